import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/configuration';
import { withTimeout } from '../common/with-timeout';
import { MetricsService } from '../metrics/metrics.service';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { TaskStore } from './task.store';
import { segmentJobData, type TaskEntity } from './task.entity';

/** Bull states in which a job will still be run (or is running). */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'paused']);

/**
 * Closes the one gap Bull leaves: PostgreSQL is the record of every task, Redis may lose jobs
 * (flushed, restarted without persistence, failed over) or a request may have been accepted while
 * Redis was down. Every RECONCILE_INTERVAL_MS, one process at a time (advisory lock) looks at open
 * tasks untouched for RECONCILE_GRACE_MS and queues again those whose job is gone or finished in
 * Bull. Queuing twice cannot produce two results: completion is conditional on the task being open
 * and results are unique per task.
 */
@Injectable()
export class Reconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(Reconciler.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(
    private readonly store: TaskStore,
    private readonly queue: SegmentationQueue,
    private readonly metrics: MetricsService,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.cfg.enabled || this.cfg.reconcileIntervalMs <= 0) return;
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.reconcileOnce().finally(() => (this.running = undefined));
    }, this.cfg.reconcileIntervalMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass; returns how many tasks were queued again (undefined: another process holds the lock). */
  async reconcileOnce(): Promise<number | undefined> {
    try {
      return await this.store.withReconcileLock(async () => {
        let requeued = 0;
        // Page by page through every candidate. A task queued again here is touched now, so it is
        // after the cursor and comes back at most once, with a live job then (left alone).
        for (let page = await this.store.staleOpenTasks(this.cfg.reconcileGraceMs); page.length > 0; ) {
          for (const task of page) if (await this.requeueIfLost(task)) requeued++;
          page = await this.store.staleOpenTasks(this.cfg.reconcileGraceMs, page[page.length - 1]);
        }
        if (requeued > 0) this.logger.warn({ requeued }, 'reconciler queued lost tasks again');
        return requeued;
      });
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'reconciliation pass failed; will retry');
      return 0;
    }
  }

  private async requeueIfLost(task: TaskEntity): Promise<boolean> {
    const job = await withTimeout(this.queue.getJob(task.jobId, task.priority), 2000, 'redis did not answer in time');
    const state = job ? await this.queue.stateOf(job) : undefined;
    if (state && LIVE_STATES.has(state)) return false;
    // Gone (Redis lost it, or it was never added) or finished in Bull while PostgreSQL says open.
    const jobId = job ? `${task.taskId}:q${Date.now().toString(36)}` : task.jobId;
    const updated = await this.store.transition(task.taskId, ['queued', 'processing'], { status: 'queued', progress: 0, jobId });
    if (!updated) return false;
    await this.queue.add({ jobId, priority: updated.priority, data: segmentJobData(updated) });
    await this.store.markEnqueued([task.taskId]);
    this.metrics.jobsTotal.inc({ result: 'reconciled' });
    return true;
  }
}
