import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Job } from 'bull';
import { appConfig, queueConfig } from '../../config/configuration';
import { SEGMENT_JOB, SegmentJobData } from '../../common/contracts';
import { ShutdownState } from '../../common/shutdown-state';
import { MetricsService } from '../../metrics/metrics.service';
import { MlService } from '../../ml/ml.service';
import { FinalTaskError, HandedBackError, PreparedTask, TaskRunner } from '../../segmentation/task-runner';
import { SegmentationQueue } from '../segmentation-queue';
import { RealtimePublisher } from '../../realtime/realtime.publisher';
import type { RedisClient } from '../../redis/redis.factory';
import { redactSecrets } from '../../common/redact';
import { BandConsumer } from './band-consumer';

/** Margin kept from SHUTDOWN_TIMEOUT for handing jobs back and closing pools. */
const SHUTDOWN_MARGIN_MS = 5000;
/** An idle slot looks at the bands this often even without a pub/sub wake-up (missed message, stalled job moved back). */
const IDLE_POLL_MS = 1000;
const RETRY_DELAY_MS = 1000;

/**
 * The consumer: QUEUE_CONCURRENCY jobs at once per process, taken from the most urgent priority band
 * first (see BandConsumer). Consumption is paused locally while the ML
 * circuit is open (waiting jobs keep their attempts) and on shutdown, when active jobs get until
 * SHUTDOWN_TIMEOUT minus a margin to finish before they are handed back to the queue.
 */
@Injectable()
export class SegmentationWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(SegmentationWorker.name);
  private readonly active = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  private unsubscribe?: () => void;
  private cleanupTimer?: NodeJS.Timeout;
  private consumer?: BandConsumer<SegmentJobData>;
  private readonly preparedAhead = new WeakMap<Job<unknown>, Promise<PreparedTask>>();

  constructor(
    private readonly queue: SegmentationQueue,
    private readonly runner: TaskRunner,
    private readonly ml: MlService,
    private readonly metrics: MetricsService,
    private readonly shutdown: ShutdownState,
    private readonly realtime: RealtimePublisher,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
    @Inject(appConfig.KEY) private readonly app: ConfigType<typeof appConfig>,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const bands = this.queue.bands;
    this.consumer = new BandConsumer(bands, bands[0].client as RedisClient, {
      concurrency: this.cfg.concurrency,
      jobName: SEGMENT_JOB,
      fairness: this.cfg.fairness,
      idlePollMs: IDLE_POLL_MS,
      retryDelayMs: RETRY_DELAY_MS,
      // For a job fetched ahead, read its image path and check the file while its slot's current job
      // waits for the ML service (read-only: the task stays queued); its ML call then starts alongside
      // its claim, so neither round trip is between two ML calls.
      onFetchedAhead: (job) => {
        const prepared = this.runner.prepare((job as Job<SegmentJobData>).data);
        prepared.catch(() => undefined); // awaited (and its failure handled) when the job runs
        this.preparedAhead.set(job, prepared);
      },
    });
    const logError = (err: unknown) => this.logger.warn({ err: redactSecrets((err as Error)?.message ?? String(err)) }, 'queue error');
    this.consumer.on('error', logError);
    for (const q of bands) q.on('error', logError);
    this.unsubscribe = this.ml.onStateChange((state) => {
      this.realtime.broadcastMlStatus({ state, available: state !== 'open' });
      if (this.shutdown.isShuttingDown) return;
      if (state === 'open') this.consumer?.pause();
      else this.consumer?.resume();
    });
    this.shutdown.onShutdown(() => this.consumer?.pause());
    await this.consumer.start((job: Job<SegmentJobData>, releaseSlot) => this.handle(job, releaseSlot));
    this.cleanupTimer = setInterval(() => void this.cleanup(), 10 * 60_000);
    this.cleanupTimer.unref();
  }

  private async handle(job: Job<SegmentJobData>, releaseSlot: () => void): Promise<string> {
    if (job.processedOn) this.metrics.jobWait.observe(Math.max(0, job.processedOn - job.timestamp) / 1000);
    const endTimer = this.metrics.jobDuration.startTimer();
    const abort = new AbortController();
    const prepared = this.preparedAhead.get(job);
    this.preparedAhead.delete(job);
    const done = this.runner
      .run(job.data, { signal: abort.signal, releaseSlot, prepared })
      .finally(() => endTimer());
    this.active.set(String(job.id), { abort, done });
    try {
      return await done;
    } catch (err) {
      if (err instanceof FinalTaskError) await job.discard();
      if (!(err instanceof FinalTaskError) && !(err instanceof HandedBackError)) {
        this.logger.warn({ taskId: job.data.taskId, err: (err as Error).message }, 'job attempt failed');
      }
      throw err;
    } finally {
      this.active.delete(String(job.id));
    }
  }

  /** Stop taking jobs, let active ones finish within the budget, then hand the rest back. */
  async beforeApplicationShutdown(): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.cleanupTimer);
    this.consumer?.pause();
    // While the circuit is open the active jobs are only waiting for it: hand them back at once.
    const budget = this.ml.state() === 'open' ? 0 : Math.max(0, this.app.shutdownTimeoutMs - SHUTDOWN_MARGIN_MS);
    const all = () => Promise.allSettled([...this.active.values()].map((a) => a.done));
    const timer = new Promise((r) => setTimeout(r, budget).unref());
    await Promise.race([all(), timer]);
    if (this.active.size > 0) {
      this.logger.warn({ jobs: this.active.size }, 'handing active jobs back to the queue');
      for (const a of this.active.values()) a.abort.abort();
      await all();
    }
    await this.consumer?.stop();
  }

  private async cleanup(): Promise<void> {
    try {
      await this.queue.clean(24 * 3600_000, 7 * 24 * 3600_000);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'queue cleanup failed');
    }
  }
}
