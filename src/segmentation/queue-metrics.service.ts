import { Injectable, OnModuleInit } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { withTimeout } from '../common/with-timeout';
import { HealthCheckable, HealthContributor, ServiceCheck } from '../health/health-contributor';
import { TaskStore } from './task.store';

export interface QueueMetrics {
  waiting: number;
  active: number;
  completed: number;
  failed: number;
  delayed: number;
  paused: number;
  deadLettered: number;
  isPaused: boolean;
  processingRatePerMinute: number;
  avgWaitMs: number;
  avgProcessingMs: number;
}

/** Queue figures of CONTRACT §3 from Bull's counts and PostgreSQL's history; also the `queue` health. */
@Injectable()
@HealthContributor({ service: 'queue', critical: true, readiness: false })
export class QueueMetricsService implements OnModuleInit, HealthCheckable {
  constructor(
    private readonly queue: SegmentationQueue,
    private readonly store: TaskStore,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    this.metrics.onCollect(async () => {
      // The counts are global (Redis), the same from every process; dashboards and KEDA take their max.
      // A process that cannot read them exports none rather than its last, stale figures.
      let c: Awaited<ReturnType<SegmentationQueue['counts']>>;
      try {
        c = await withTimeout(this.queue.counts(), 900, 'queue counts timed out');
      } catch {
        this.metrics.queueJobs.reset();
        return;
      }
      for (const state of ['waiting', 'active', 'completed', 'failed', 'delayed', 'paused'] as const) {
        this.metrics.queueJobs.set({ state }, c[state] ?? 0);
      }
    });
  }

  async snapshot(): Promise<QueueMetrics> {
    const [c, isPaused, stats] = await Promise.all([this.queue.counts(), this.queue.isPaused(), this.store.recentStats()]);
    return {
      waiting: c.waiting ?? 0,
      active: c.active ?? 0,
      completed: c.completed ?? 0,
      failed: c.failed ?? 0,
      delayed: c.delayed ?? 0,
      paused: c.paused ?? 0,
      deadLettered: stats.deadLettered,
      isPaused,
      processingRatePerMinute: stats.perMinute,
      avgWaitMs: stats.avgWaitMs,
      avgProcessingMs: stats.avgProcessingMs,
    };
  }

  async check(): Promise<ServiceCheck> {
    try {
      return { up: true, details: { ...(await withTimeout(this.snapshot(), 900, 'queue did not answer in time')) } };
    } catch (err) {
      return { up: false, details: { error: (err as Error).message.includes('in time') ? (err as Error).message : 'queue unavailable' } };
    }
  }
}
