import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectQueue } from '@nestjs/bull';
import type { Job, JobCounts, JobOptions, Queue } from 'bull';
import { queueConfig } from '../config/configuration';
import { SEGMENT_JOB, SegmentJobData } from '../common/contracts';
import { DEAD_LETTER_QUEUE, PRIORITY_BANDS, bandOf } from './queue.constants';

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
 * "The queue" is one FIFO Bull queue per priority band (PRIORITY_BANDS, most urgent first): a job is
 * added to the band of its task's priority with an O(1) LPUSH, and workers take from the most urgent
 * non-empty band. Counts, pause and resume span every band.
 */
@Injectable()
export class SegmentationQueue {
  private readonly byBand: ReadonlyMap<number, Queue<SegmentJobData>>;

  constructor(
    @Inject(BAND_QUEUES) readonly bands: ReadonlyArray<Queue<SegmentJobData>>,
    @InjectQueue(DEAD_LETTER_QUEUE) private readonly deadLetter: Queue<SegmentJobData & { error: string }>,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
  ) {
    this.byBand = new Map(PRIORITY_BANDS.map((b, i) => [b, bands[i]]));
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

  add(req: EnqueueRequest): Promise<Job<SegmentJobData>> {
    return this.bandFor(req.priority).add(SEGMENT_JOB, req.data, this.jobOptions(req));
  }

  /** One `addBulk` per band concerned (all bands' keys share one hash tag, but Bull adds per queue). */
  async addBulk(reqs: EnqueueRequest[]): Promise<Job<SegmentJobData>[]> {
    const groups = new Map<Queue<SegmentJobData>, EnqueueRequest[]>();
    for (const r of reqs) {
      const q = this.bandFor(r.priority);
      groups.set(q, [...(groups.get(q) ?? []), r]);
    }
    const added = await Promise.all(
      [...groups].map(([q, rs]) => q.addBulk(rs.map((r) => ({ name: SEGMENT_JOB, data: r.data, opts: this.jobOptions(r) })))),
    );
    return added.flat();
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

  /** Removes a waiting/delayed job; false when it is active (locked by a worker) or gone. */
  async removeIfNotActive(jobId: string, priority?: number): Promise<boolean> {
    const job = await this.getJob(jobId, priority);
    if (!job) return false;
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

  /** Job counts summed over the bands. */
  async counts(): Promise<QueueCounts> {
    const all = (await Promise.all(this.bands.map((q) => q.getJobCounts()))) as QueueCounts[];
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
