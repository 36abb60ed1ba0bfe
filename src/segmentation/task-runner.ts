import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/configuration';
import { OPEN_TASK_STATUSES, SegmentJobData, TaskStatus } from '../common/contracts';
import { MetricsService } from '../metrics/metrics.service';
import { MlService } from '../ml/ml.service';
import { MlAbortedError, MlBadInputError, MlCircuitOpenError } from '../ml/ml.errors';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { RealtimePublisher } from '../realtime/realtime.publisher';
import { ObjectStore } from '../storage/object-store';
import { TaskStore } from './task.store';
import type { TaskEntity } from './task.entity';

/** The job must not be retried by Bull (bad input, or every attempt used). */
export class FinalTaskError extends Error {}
/** The job goes back to the queue without using an ML attempt (shutdown hand-back). */
export class HandedBackError extends Error {}

export interface RunContext {
  signal: AbortSignal;
  /**
   * Called once the ML call has returned (whatever its outcome): QUEUE_CONCURRENCY bounds the calls in
   * flight to the ML service, so the worker may start its next job while this one records its outcome.
   */
  releaseSlot?(): void;
  /** {@link TaskRunner.prepare} already started for this job (fetched ahead); else run() prepares. */
  prepared?: Promise<PreparedTask>;
}

/**
 * A look-ahead's finding: the image's path (the payload's hint, or read from PostgreSQL, where null means
 * the task is no longer open) and whether the file lies under UPLOAD_DIR.
 */
export interface PreparedTask {
  storagePath: string | null;
  fileOk: boolean;
}

export type RunOutcome = 'completed' | 'dropped';

/**
 * Runs one segmentation job on a worker: claims the task in PostgreSQL, which answers its image's
 * storage key (the payload's key is only a hint to start the call early), checks the file lies under
 * UPLOAD_DIR, waits while the ML circuit is open (attempts are kept), calls the ML service and records
 * the outcome. Every state change is written to PostgreSQL before the matching event is published.
 */
@Injectable()
export class TaskRunner {
  constructor(
    private readonly store: TaskStore,
    private readonly ml: MlService,
    private readonly queue: SegmentationQueue,
    private readonly realtime: RealtimePublisher,
    private readonly metrics: MetricsService,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
    private readonly files: ObjectStore,
  ) {}

  /**
   * Read-only look-ahead the worker may run while the job before this one on the same slot still waits
   * for the ML service: the image's path (the payload's hint, else read from PostgreSQL by the task id)
   * and whether the file lies under UPLOAD_DIR. Nothing is written: the task stays `queued` until run(),
   * whose claim reads the path from PostgreSQL and decides.
   */
  async prepare(data: SegmentJobData): Promise<PreparedTask> {
    // The payload's key (a hint, see SegmentJobData): no read here; the claim's answer decides in run().
    if (data.storagePath) return { storagePath: data.storagePath, fileOk: await this.isInsideUploads(data.storagePath) };
    const row = await this.store.peekForRun(data.taskId);
    if (!row || !OPEN_TASK_STATUSES.includes(row.status)) return { storagePath: null, fileOk: false };
    return { storagePath: row.storagePath, fileOk: await this.isInsideUploads(row.storagePath) };
  }

  async run(data: SegmentJobData, ctx: RunContext): Promise<RunOutcome> {
    // With a look-ahead that found the file, the first ML call starts alongside the claim (the claim's
    // round trip is then hidden behind the call); a claim that finds the task no longer open cancels it.
    // Only a job fetched ahead starts early: a job taken by an idle slot claims first, so the task reads
    // `processing` before its ML call arrives (the order a client watching one task sees).
    const ahead = ctx.prepared ? await ctx.prepared.catch(() => undefined) : undefined;
    let early =
      ahead?.fileOk && ahead.storagePath && this.ml.isCallable()
        ? this.startEarly(data, ahead.storagePath, ctx.signal)
        : undefined;
    let task: Awaited<ReturnType<TaskRunner['claim']>>;
    try {
      task = await this.claim(data);
    } catch (err) {
      early?.cancel();
      throw err;
    }
    if (!task) {
      early?.cancel();
      return 'dropped';
    }
    const storagePath = task.storagePath ?? '';
    if (early && ahead?.storagePath !== storagePath) {
      // The call went out with a key PostgreSQL no longer gives (a stale payload hint): drop it, check
      // and call again with the key read now.
      early.cancel();
      early = undefined;
    }
    if (!early && !(await this.isInsideUploads(storagePath))) {
      return this.fail(task, 'image file is missing or outside the upload directory', false);
    }
    this.realtime.toTask(task, 'segmentation:progress', { progress: 10 });

    let pending = early?.call;
    /** Set once this job waited for the circuit: the task may have been cancelled meanwhile. */
    let waited = false;
    for (;;) {
      if (!pending) {
        if (ctx.signal.aborted) return this.handBack(task);
        if (!this.ml.isCallable()) waited = true;
        try {
          await this.ml.waitUntilCallable(ctx.signal);
        } catch {
          return this.handBack(task);
        }
        if (waited) {
          // Right before the call: a task cancelled while it waited must not get the call (at half-open
          // it would take the one trial call from a live task, and its result would be dropped anyway).
          waited = false;
          if (!(await this.store.isProcessing(task.taskId))) {
            ctx.releaseSlot?.();
            this.metrics.jobsTotal.inc({ result: 'discarded' });
            return 'dropped';
          }
          // Another caller took the half-open trial during that round trip: wait for its outcome.
          if (!this.ml.isCallable()) {
            waited = true;
            continue;
          }
        }
      }
      try {
        const call =
          pending ??
          this.ml.segment({ image_path: storagePath, task_id: task.taskId }, { signal: ctx.signal });
        pending = undefined;
        const results = await call;
        const answered = performance.now();
        ctx.releaseSlot?.();
        return await this.succeed(task, results, answered);
      } catch (err) {
        pending = undefined;
        if (!(err instanceof MlCircuitOpenError)) ctx.releaseSlot?.(); // else it calls again below
        if (err instanceof MlAbortedError) return this.handBack(task);
        if (err instanceof MlCircuitOpenError) {
          // Did not reach the ML service: keep the attempt, wait for the circuit to move on.
          waited = true;
          await this.ml.waitForStateChange(ctx.signal).catch(() => undefined);
          continue;
        }
        if (err instanceof MlBadInputError) return this.fail(task, err.message, true);
        return this.failedAttempt(task, err as Error);
      }
    }
  }

  /**
   * Marks the task processing (only if still open) and its image, and reads the path, in one
   * statement. A deleted image took its task rows with it, so it lands here as "not open" too.
   */
  private claim(data: SegmentJobData) {
    return this.store.claim(data.taskId);
  }

  /** The first ML call, started before the claim has answered; `cancel()` aborts it (claim refused or failed). */
  private startEarly(data: SegmentJobData, storagePath: string, signal: AbortSignal) {
    // One controller for both causes (the job's signal, or cancel()); AbortSignal.any costs far more per call.
    const local = new AbortController();
    const forward = () => local.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener('abort', forward, { once: true });
    const call = this.ml.segment({ image_path: storagePath, task_id: data.taskId }, { signal: local.signal });
    call.catch(() => undefined).finally(() => signal.removeEventListener('abort', forward)); // awaited by run() unless cancelled
    return { call, cancel: () => local.abort() };
  }

  /** Whether the ML service may be sent this path (ObjectStore.mayRead: with `local`, the file exists under UPLOAD_DIR). */
  private isInsideUploads(storagePath: string): Promise<boolean> {
    return this.files.mayRead(storagePath);
  }

  private async succeed(
    task: TaskEntity,
    results: Parameters<TaskStore['complete']>[1],
    answered: number,
  ): Promise<RunOutcome> {
    // No `progress: 90` event: it went out just before `completed`, with only the completion write
    // between them (one more Redis publish and Socket.IO fan-out per job that no user could see).
    const done = await this.store.complete(task.taskId, results);
    if (!done) {
      this.metrics.jobsTotal.inc({ result: 'discarded' });
      return 'dropped'; // cancelled while processing: the result is dropped
    }
    this.metrics.jobsTotal.inc({ result: 'completed' });
    this.realtime.toTask(task, 'segmentation:completed', {
      polygonCount: results.polygons.length,
      spheroidCount: results.polygons.filter((p) => p.type === 'external').length,
      processingTimeMs: Math.round(results.processing_time_ms),
    });
    this.metrics.completionPublish.observe((performance.now() - answered) / 1000);
    return 'completed';
  }

  /**
   * Terminal failure. `attemptsDelta`: 1 when this call reached the ML service and was not counted yet.
   * `from`: the states the task may be in (a task already put back to `queued` by a failed attempt).
   */
  private async fail(
    task: TaskEntity,
    message: string,
    reachedMl: boolean,
    deadLetter = false,
    from: readonly TaskStatus[] = OPEN_TASK_STATUSES,
  ): Promise<never> {
    const failed = await this.store.transition(task.taskId, from, {
      status: 'failed',
      errorMessage: message,
      attemptsDelta: reachedMl ? 1 : 0,
      completed: true,
      deadLettered: deadLetter,
      imageStatus: 'failed',
    });
    if (failed) {
      if (deadLetter) {
        await this.queue
          .toDeadLetter(
            { taskId: task.taskId, imageId: task.imageId, userId: task.userId },
            failed.jobId,
            message,
          )
          .catch(() => undefined);
      }
      this.metrics.jobsTotal.inc({ result: deadLetter ? 'dead_lettered' : 'failed' });
      this.realtime.toTask(task, 'segmentation:failed', {
        error: message,
        attempt: failed.attempts,
        willRetry: false,
      });
    }
    throw new FinalTaskError(message);
  }

  /** An ML failure (5xx, timeout, refused): retried with backoff until QUEUE_MAX_ATTEMPTS calls were made. */
  private async failedAttempt(task: TaskEntity, err: Error): Promise<never> {
    const message = err.message || 'ML service failure';
    const t = await this.store.transition(task.taskId, OPEN_TASK_STATUSES, {
      status: 'queued',
      errorMessage: message,
      attemptsDelta: 1,
      progress: 0,
      imageStatus: 'queued',
    });
    if (!t) throw new FinalTaskError('task is no longer open');
    if (t.attempts >= this.cfg.maxAttempts) return this.fail(t, message, false, true, ['queued']);
    this.metrics.jobsTotal.inc({ result: 'retried' });
    this.realtime.toTask(task, 'segmentation:failed', {
      error: message,
      attempt: t.attempts,
      willRetry: true,
    });
    throw err;
  }

  private async handBack(task: TaskEntity): Promise<never> {
    await this.store.transition(task.taskId, ['processing'], {
      status: 'queued',
      progress: 0,
      imageStatus: 'queued',
    });
    throw new HandedBackError('handed back: worker shutting down');
  }
}
