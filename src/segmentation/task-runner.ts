import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { queueConfig, uploadsConfig } from '../config/configuration';
import { OPEN_TASK_STATUSES, SegmentJobData, TaskStatus } from '../common/contracts';
import { MetricsService } from '../metrics/metrics.service';
import { MlService } from '../ml/ml.service';
import { MlAbortedError, MlBadInputError, MlCircuitOpenError } from '../ml/ml.errors';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { RealtimePublisher } from '../realtime/realtime.publisher';
import { TaskStore } from './task.store';
import type { TaskEntity } from './task.entity';

/** The job must not be retried by Bull (bad input, or every attempt used). */
export class FinalTaskError extends Error {}
/** The job goes back to the queue without using an ML attempt (shutdown hand-back). */
export class HandedBackError extends Error {}

export interface RunContext {
  signal: AbortSignal;
  /**
   * Bull's copy of the job's progress (shown by the queue dashboard). Not awaited: the truth is the
   * task's PostgreSQL row and the `segmentation:progress` events, and a Redis round trip per job on
   * the critical path cost throughput.
   */
  progress?(pct: number): Promise<void>;
  /**
   * Called once the ML call has returned (whatever its outcome): QUEUE_CONCURRENCY bounds the calls in
   * flight to the ML service, so the worker may start its next job while this one records its outcome.
   */
  releaseSlot?(): void;
  /** {@link TaskRunner.prepare} already started for this job (fetched ahead); else run() prepares. */
  prepared?: Promise<PreparedTask>;
}

/** The claimed task (null: no longer open) and whether its file lies under UPLOAD_DIR. */
export interface PreparedTask {
  task: (TaskEntity & { storagePath?: string }) | null;
  fileOk: boolean;
}

export type RunOutcome = 'completed' | 'dropped';

/**
 * Runs one segmentation job on a worker: re-reads task and image from PostgreSQL (the payload carries
 * ids only), checks the file lies under UPLOAD_DIR, waits while the ML circuit is open (attempts are
 * kept), calls the ML service and records the outcome. Every state change is written to PostgreSQL
 * before the matching event is published.
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
    @Inject(uploadsConfig.KEY) private readonly uploads: ConfigType<typeof uploadsConfig>,
  ) {}

  /**
   * The job's first step, which the worker may run ahead, while the job before it on the same slot is
   * still waiting for the ML service: one statement marks the task processing (only if still open) and
   * its image, and reads the path; then the file is checked. A deleted image took its task rows with
   * it, so it lands here as "not open" too.
   */
  async prepare(data: SegmentJobData): Promise<PreparedTask> {
    const task = await this.store.transition(data.taskId, OPEN_TASK_STATUSES, {
      status: 'processing',
      started: true,
      progress: 10,
      imageStatus: 'processing',
    });
    if (!task) return { task: null, fileOk: false };
    return { task, fileOk: await this.isInsideUploads(task.storagePath ?? '') };
  }

  /** Undoes {@link prepare} for a job that is given back to the queue without being run. */
  async unprepare(prepared: PreparedTask): Promise<void> {
    if (!prepared.task) return;
    await this.store.transition(prepared.task.taskId, ['processing'], { status: 'queued', progress: 0, imageStatus: 'queued' });
  }

  async run(data: SegmentJobData, ctx: RunContext): Promise<RunOutcome> {
    const { task, fileOk } = await (ctx.prepared ?? this.prepare(data));
    if (!task) return 'dropped';
    const storagePath = task.storagePath ?? '';
    if (!fileOk) return this.fail(task, 'image file is missing or outside the upload directory', false);
    void ctx.progress?.(10);
    this.realtime.toUser(task.userId, 'segmentation:progress', { taskId: task.taskId, imageId: task.imageId, progress: 10 });

    for (;;) {
      if (ctx.signal.aborted) return this.handBack(task);
      try {
        await this.ml.waitUntilCallable(ctx.signal);
      } catch {
        return this.handBack(task);
      }
      try {
        const results = await this.ml.segment({ image_path: storagePath, task_id: task.taskId }, { signal: ctx.signal });
        ctx.releaseSlot?.();
        return await this.succeed(task, results);
      } catch (err) {
        if (!(err instanceof MlCircuitOpenError)) ctx.releaseSlot?.(); // else it calls again below
        if (err instanceof MlAbortedError) return this.handBack(task);
        if (err instanceof MlCircuitOpenError) {
          // Did not reach the ML service: keep the attempt, wait for the circuit to move on.
          await this.ml.waitForStateChange(ctx.signal).catch(() => undefined);
          continue;
        }
        if (err instanceof MlBadInputError) return this.fail(task, err.message, true);
        return this.failedAttempt(task, err as Error);
      }
    }
  }

  private async isInsideUploads(storagePath: string): Promise<boolean> {
    const root = this.uploads.dir;
    const abs = path.resolve(root, storagePath);
    if (!storagePath || !abs.startsWith(root + path.sep)) return false;
    return access(abs).then(
      () => true,
      () => false,
    );
  }

  private async succeed(task: TaskEntity, results: Parameters<TaskStore['complete']>[1]): Promise<RunOutcome> {
    // No `progress: 90` event: it went out just before `completed`, with only the completion write
    // between them (one more Redis publish and Socket.IO fan-out per job that no user could see).
    const done = await this.store.complete(task.taskId, results);
    if (!done) {
      this.metrics.jobsTotal.inc({ result: 'discarded' });
      return 'dropped'; // cancelled while processing: the result is dropped
    }
    this.metrics.jobsTotal.inc({ result: 'completed' });
    this.realtime.toUser(task.userId, 'segmentation:completed', {
      taskId: task.taskId,
      imageId: task.imageId,
      polygonCount: results.polygons.filter((p) => p.type === 'external').length,
      processingTimeMs: Math.round(results.processing_time_ms),
    });
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
          .toDeadLetter({ taskId: task.taskId, imageId: task.imageId, userId: task.userId }, failed.jobId, message)
          .catch(() => undefined);
      }
      this.metrics.jobsTotal.inc({ result: deadLetter ? 'dead_lettered' : 'failed' });
      this.realtime.toUser(task.userId, 'segmentation:failed', {
        taskId: task.taskId,
        imageId: task.imageId,
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
    this.realtime.toUser(task.userId, 'segmentation:failed', {
      taskId: task.taskId,
      imageId: task.imageId,
      error: message,
      attempt: t.attempts,
      willRetry: true,
    });
    throw err;
  }

  private async handBack(task: TaskEntity): Promise<never> {
    await this.store.transition(task.taskId, ['processing'], { status: 'queued', progress: 0, imageStatus: 'queued' });
    throw new HandedBackError('handed back: worker shutting down');
  }
}
