import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectQueue } from '@nestjs/bull';
import type { Job, JobCounts, JobOptions, JobStatus, Queue } from 'bull';
import { queueConfig } from '../config/configuration';
import { Publication, SEGMENT_JOB, SegmentJobData } from '../common/contracts';
import type { RedisClient } from '../redis/redis.factory';
import { DEAD_LETTER_QUEUE, PRIORITY_BANDS, bandOf } from './queue.constants';
import { fairAddAll, fairCount, fairPeek, fairRemove, fairState } from './fair-lines';

const bandKeys = (q: Queue) => (q as unknown as { keys: Record<'wait' | 'paused', string> }).keys;

/** Injection token of the band queues, most urgent first (see QueueModule). */
export const BAND_QUEUES = Symbol('BAND_QUEUES');

export interface EnqueueRequest {
  jobId: string;
  data: SegmentJobData;
  priority: number;
}

export type QueueCounts = JobCounts & { paused: number };

/**
 * Producer side of the segmentation queue: the only code that adds, removes or counts Bull jobs.
 * "The queue" is one Bull queue per priority band (PRIORITY_BANDS, most urgent first), and workers take
 * from the most urgent non-empty band. With QUEUE_FAIRNESS=user a job is added to the back of its user's
 * list in its band (`fair-lines.ts`: O(1), the users take turns); with `none`, to Bull's FIFO wait list
 * of the band (one LPUSH). Counts, pause and resume span every band, and count both places.
 */
@Injectable()
export class SegmentationQueue {
  private readonly byBand: ReadonlyMap<number, Queue<SegmentJobData>>;
  /** The bands' shared command connection (auto-pipelined; see QueueModule). */
  private readonly client: RedisClient;

  constructor(
    @Inject(BAND_QUEUES) readonly bands: ReadonlyArray<Queue<SegmentJobData>>,
    @InjectQueue(DEAD_LETTER_QUEUE) private readonly deadLetter: Queue<SegmentJobData & { error: string }>,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
  ) {
    this.byBand = new Map(PRIORITY_BANDS.map((b, i) => [b, bands[i]]));
    this.client = bands[0].client as RedisClient;
  }

  /** Every Bull queue of the service (bands most urgent first, then the dead-letter queue), e.g. for a dashboard. */
  bullQueues(): Queue[] {
    return [...this.bands, this.deadLetter] as Queue[];
  }

  /** The band queue a task of contract priority `priority` goes to. */
  bandFor(priority: number): Queue<SegmentJobData> {
    return this.byBand.get(bandOf(priority, this.cfg.priorityEnabled))!;
  }

  jobOptions(req: EnqueueRequest): JobOptions {
    return {
      jobId: req.jobId,
      attempts: this.cfg.maxAttempts,
      backoff: { type: 'exponential', delay: this.cfg.backoffDelayMs },
      // History lives in PostgreSQL: Redis keeps a bounded tail only.
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 5000 },
    };
  }

  async add(req: EnqueueRequest): Promise<void> {
    await this.addBulk([req]);
  }

  /**
   * Adds the jobs, then publishes `publications` (e.g. their `segmentation:queued` events) once they are
   * queued. With QUEUE_FAIRNESS=user that is one round trip (one MULTI across the bands concerned, or one
   * script call); returns false when the publications were not sent (`none`: Bull's own add), so the
   * caller sends them itself.
   */
  async addBulk(reqs: EnqueueRequest[], publications: readonly Publication[] = []): Promise<boolean> {
    const jobs = reqs.map((r) => ({
      q: this.bandFor(r.priority),
      job: { jobId: r.jobId, name: SEGMENT_JOB, data: r.data, opts: this.jobOptions(r) },
    }));
    if (this.cfg.fairness === 'user') {
      await fairAddAll(this.client, jobs, publications);
      return true;
    }
    const groups = new Map<Queue<SegmentJobData>, typeof jobs>();
    for (const j of jobs) groups.set(j.q, [...(groups.get(j.q) ?? []), j]);
    await Promise.all(
      [...groups].map(([q, js]) =>
        js.length === 1 ? q.add(SEGMENT_JOB, js[0].job.data as SegmentJobData, js[0].job.opts) : q.addBulk(js.map((j) => j.job) as never),
      ),
    );
    return publications.length === 0;
  }

  /**
   * The job `jobId`, looked up first in the band of `priority` (when known), then in the others (the
   * task may have been queued under another QUEUE_PRIORITY_ENABLED setting).
   */
  async getJob(jobId: string, priority?: number): Promise<Job<SegmentJobData> | null> {
    const first = priority === undefined ? undefined : this.bandFor(priority);
    if (first) {
      const job = await first.getJob(jobId);
      if (job) return job;
    }
    const found = await Promise.all(this.bands.filter((q) => q !== first).map((q) => q.getJob(jobId)));
    return found.find((j) => j !== null) ?? null;
  }

  /**
   * Removes a waiting/delayed job; false when it is active (locked by a worker) or gone. A job in its
   * user's list leaves it first (and its user leaves the band's turns when it was their last), whatever
   * QUEUE_FAIRNESS is now: it may have been queued under the other setting.
   */
  async removeIfNotActive(jobId: string, priority?: number): Promise<boolean> {
    const job = await this.getJob(jobId, priority);
    if (!job) return false;
    if (await fairRemove(this.client, job.queue, String(job.id), job.data)) {
      await job.remove().catch(() => undefined); // in no list any more: no worker can take it
      return true;
    }
    if (await job.isActive()) return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // taken by a worker meanwhile
    }
  }

  async toDeadLetter(data: SegmentJobData, jobId: string, error: string): Promise<void> {
    await this.deadLetter.add({ ...data, error }, { jobId: `dl:${jobId}`, removeOnComplete: true, removeOnFail: 1000 });
  }

  async removeFromDeadLetter(jobId: string): Promise<void> {
    const job = await this.deadLetter.getJob(`dl:${jobId}`);
    await job?.remove().catch(() => undefined);
  }

  /**
   * Bull's state of a job, where a job in its user's list (QUEUE_FAIRNESS=user) is `waiting` (`paused`
   * while its band is paused), as it would be in Bull's wait list; read atomically (`fairState`), so a
   * job being taken by a worker is never seen as `stuck` and queued a second time by the reconciler.
   */
  async stateOf(job: Job<SegmentJobData>): Promise<JobStatus | 'stuck'> {
    return fairState(this.client, job.queue, String(job.id), job.data);
  }

  /**
   * One band's counts: Bull's, with the jobs in its user lists counted as `waiting` (as `paused` while the
   * band is paused, as Bull counts its paused list), so every queued job is counted once.
   */
  async bandCounts(q: Queue): Promise<QueueCounts> {
    const [c, queued, paused] = await Promise.all([q.getJobCounts() as Promise<QueueCounts>, fairCount(this.client, q), q.isPaused()]);
    const counts: QueueCounts = { ...c, paused: Number(c.paused ?? 0) };
    if (paused) counts.paused += queued;
    else counts.waiting = Number(counts.waiting ?? 0) + queued;
    return counts;
  }

  /** The ids of band `q`'s queued jobs at positions start..end (inclusive), in the order workers take them. */
  async waitingIds(q: Queue, start: number, end: number): Promise<string[]> {
    const queued = await fairPeek(this.client, q, start, end);
    const left = end - start + 1 - queued.length;
    if (left <= 0) return queued;
    // Then Bull's own list (jobs not moved into a user list yet), the next to be taken first.
    const held = await fairCount(this.client, q);
    const from = Math.max(0, start - held);
    const ids = await this.client.lrange((await q.isPaused()) ? `${bandKeys(q).paused}` : bandKeys(q).wait, -(from + left), -(from + 1));
    return [...queued, ...ids.reverse()];
  }

  /** Job counts summed over the bands. */
  async counts(): Promise<QueueCounts> {
    const all = await Promise.all(this.bands.map((q) => this.bandCounts(q)));
    const sum: QueueCounts = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, paused: 0 };
    for (const c of all) for (const k of Object.keys(sum) as Array<keyof QueueCounts>) sum[k] += Number(c[k] ?? 0);
    return sum;
  }

  /** Paused by an admin: every band is paused together, so any paused band means paused. */
  async isPaused(): Promise<boolean> {
    return (await Promise.all(this.bands.map((q) => q.isPaused()))).some(Boolean);
  }

  async pause(): Promise<void> {
    await Promise.all(this.bands.map((q) => q.pause()));
  }

  async resume(): Promise<void> {
    await Promise.all(this.bands.map((q) => q.resume()));
  }

  /** Drops finished jobs older than the given ages from Redis (their history is in PostgreSQL). */
  async clean(completedAgeMs: number, failedAgeMs: number): Promise<void> {
    for (const q of this.bands) {
      await q.clean(completedAgeMs, 'completed');
      await q.clean(failedAgeMs, 'failed');
    }
  }
}
