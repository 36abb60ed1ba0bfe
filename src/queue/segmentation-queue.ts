import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectQueue } from '@nestjs/bull';
import type { Job, JobCounts, JobOptions, Queue } from 'bull';
import { queueConfig } from '../config/configuration';
import { SEGMENT_JOB, SegmentJobData } from '../common/contracts';
import { DEAD_LETTER_QUEUE, SEGMENTATION_QUEUE, toBullPriority } from './queue.constants';

export interface EnqueueRequest {
  jobId: string;
  data: SegmentJobData;
  priority: number;
}

/** Producer side of the segmentation queue: the only code that adds, removes or counts Bull jobs. */
@Injectable()
export class SegmentationQueue {
  constructor(
    @InjectQueue(SEGMENTATION_QUEUE) readonly queue: Queue<SegmentJobData>,
    @InjectQueue(DEAD_LETTER_QUEUE) private readonly deadLetter: Queue<SegmentJobData & { error: string }>,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
  ) {}

  /** Every Bull queue this producer owns (shown by the queue dashboard). */
  bullQueues(): Queue[] {
    return [this.queue, this.deadLetter];
  }

  jobOptions(req: EnqueueRequest): JobOptions {
    return {
      jobId: req.jobId,
      priority: toBullPriority(req.priority, this.cfg.priorityEnabled),
      attempts: this.cfg.maxAttempts,
      backoff: { type: 'exponential', delay: this.cfg.backoffDelayMs },
      // History lives in PostgreSQL: Redis keeps a bounded tail only.
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 5000 },
    };
  }

  add(req: EnqueueRequest): Promise<Job<SegmentJobData>> {
    return this.queue.add(SEGMENT_JOB, req.data, this.jobOptions(req));
  }

  addBulk(reqs: EnqueueRequest[]): Promise<Job<SegmentJobData>[]> {
    return this.queue.addBulk(reqs.map((r) => ({ name: SEGMENT_JOB, data: r.data, opts: this.jobOptions(r) })));
  }

  getJob(jobId: string): Promise<Job<SegmentJobData> | null> {
    return this.queue.getJob(jobId);
  }

  /** Removes a waiting/delayed job; false when it is active (locked by a worker) or gone. */
  async removeIfNotActive(jobId: string): Promise<boolean> {
    const job = await this.queue.getJob(jobId);
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

  counts(): Promise<JobCounts & { paused: number }> {
    return this.queue.getJobCounts() as Promise<JobCounts & { paused: number }>;
  }

  isPaused(): Promise<boolean> {
    return this.queue.isPaused();
  }

  pause(): Promise<void> {
    return this.queue.pause();
  }

  resume(): Promise<void> {
    return this.queue.resume();
  }
}
