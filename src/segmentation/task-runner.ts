import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { Repository } from 'typeorm';
import { queueConfig, uploadsConfig } from '../config/configuration';
import { OPEN_TASK_STATUSES, SegmentJobData } from '../common/contracts';
import { ImageEntity } from '../images/image.entity';
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
  progress(pct: number): Promise<void>;
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
    @InjectRepository(ImageEntity) private readonly images: Repository<ImageEntity>,
    private readonly ml: MlService,
    private readonly queue: SegmentationQueue,
    private readonly realtime: RealtimePublisher,
    private readonly metrics: MetricsService,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
    @Inject(uploadsConfig.KEY) private readonly uploads: ConfigType<typeof uploadsConfig>,
  ) {}

  async run(data: SegmentJobData, ctx: RunContext): Promise<RunOutcome> {
    const task = await this.store.findById(data.taskId);
    if (!task || !OPEN_TASK_STATUSES.includes(task.status)) return 'dropped';
    const image = await this.images.findOneBy({ id: task.imageId });
    if (!image) return 'dropped'; // deleted: its task rows went with it
    const imagePath = await this.checkedPath(image).catch(() => null);
    if (!imagePath) return this.fail(task, 'image file is missing or outside the upload directory', false);

    const started = await this.store.transition(task.taskId, OPEN_TASK_STATUSES, { status: 'processing', started: true, progress: 10 });
    if (!started) return 'dropped';
    await this.store.setImageStatus(undefined, [task.imageId], 'processing');
    await ctx.progress(10);
    this.realtime.toUser(task.userId, 'segmentation:progress', { taskId: task.taskId, imageId: task.imageId, progress: 10 });

    for (;;) {
      if (ctx.signal.aborted) return this.handBack(task);
      try {
        await this.ml.waitUntilCallable(ctx.signal);
      } catch {
        return this.handBack(task);
      }
      try {
        const results = await this.ml.segment({ image_path: image.storagePath, task_id: task.taskId }, { signal: ctx.signal });
        return await this.succeed(task, results, ctx);
      } catch (err) {
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

  private async checkedPath(image: ImageEntity): Promise<string> {
    const root = this.uploads.dir;
    const abs = path.resolve(root, image.storagePath);
    if (!abs.startsWith(root + path.sep)) throw new Error('outside upload dir');
    await access(abs);
    return abs;
  }

  private async succeed(task: TaskEntity, results: Parameters<TaskStore['complete']>[1], ctx: RunContext): Promise<RunOutcome> {
    await ctx.progress(90);
    this.realtime.toUser(task.userId, 'segmentation:progress', { taskId: task.taskId, imageId: task.imageId, progress: 90 });
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

  /** Terminal failure. `reachedMl`: the call reached the ML service and counts as an attempt. */
  private async fail(task: TaskEntity, message: string, reachedMl: boolean, deadLetter = false): Promise<never> {
    const failed = await this.store.transaction(async (m) => {
      const t = await this.store.transition(
        task.taskId,
        OPEN_TASK_STATUSES,
        { status: 'failed', errorMessage: message, attemptsDelta: reachedMl ? 1 : 0, completed: true, deadLettered: deadLetter },
        m,
      );
      if (t) await this.store.setImageStatus(m, [t.imageId], 'failed');
      return t;
    });
    if (failed) {
      if (deadLetter) await this.queue.toDeadLetter({ taskId: task.taskId, imageId: task.imageId, userId: task.userId }, failed.jobId, message).catch(() => undefined);
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
    const current = await this.store.findById(task.taskId);
    if (!current || !OPEN_TASK_STATUSES.includes(current.status)) throw new FinalTaskError('task is no longer open');
    if (current.attempts + 1 >= this.cfg.maxAttempts) return this.fail(task, message, true, true);
    const t = await this.store.transition(task.taskId, OPEN_TASK_STATUSES, {
      status: 'queued',
      errorMessage: message,
      attemptsDelta: 1,
      progress: 0,
    });
    if (!t) throw new FinalTaskError('task is no longer open');
    await this.store.setImageStatus(undefined, [task.imageId], 'queued');
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
    await this.store.transition(task.taskId, ['processing'], { status: 'queued', progress: 0 });
    await this.store.setImageStatus(undefined, [task.imageId], 'queued');
    throw new HandedBackError('handed back: worker shutting down');
  }
}
