import {
  BadRequestException,
  ConflictException,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  NotFoundException,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { mlConfig, queueConfig } from '../config/configuration';
import { OPEN_TASK_STATUSES, TaskStatus } from '../common/contracts';
import { withTimeout } from '../common/with-timeout';
import type { AuthUser } from '../auth/auth-user';
import { ImagesService } from '../images/images.service';
import { ImageEntity } from '../images/image.entity';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { RealtimePublisher } from '../realtime/realtime.publisher';
import { MlService } from '../ml/ml.service';
import { MlBadInputError, MlCircuitOpenError } from '../ml/ml.errors';
import { TaskStore } from './task.store';
import { EnqueueBatcher } from './enqueue-batcher';
import { segmentJobData, TaskEntity } from './task.entity';
import { toTaskView, TaskView } from './views';
import { AccessPolicy, MAX_IDS_PER_REQUEST } from '../access';

const REDIS_ENQUEUE_TIMEOUT_MS = 2000;
const MAX_INT4 = 2_147_483_647;
const isDbId = (id: number): boolean => Number.isInteger(id) && id >= 1 && id <= MAX_INT4;

/**
 * Task lifecycle on the API side: enqueue (single, batch), read, list, cancel, results, dead-letter
 * retry and the synchronous rollback path. A task's row is written before its job is queued; if Redis
 * cannot take the job now, the task stays `queued` in PostgreSQL and the reconciler queues it later.
 */
@Injectable()
export class SegmentationService implements OnModuleInit {
  private readonly logger = new Logger(SegmentationService.name);
  private readonly batcher: EnqueueBatcher;

  constructor(
    private readonly store: TaskStore,
    private readonly queue: SegmentationQueue,
    private readonly images: ImagesService,
    private readonly realtime: RealtimePublisher,
    @Inject(queueConfig.KEY) private readonly cfg: ConfigType<typeof queueConfig>,
    @Inject(mlConfig.KEY) private readonly mlCfg: ConfigType<typeof mlConfig>,
    private readonly access: AccessPolicy,
    @Optional() private readonly ml?: MlService,
  ) {
    this.batcher = new EnqueueBatcher(
      store,
      () => this.cfg.maxPendingTasksPerUser,
      (tasks) => (this.cfg.enabled ? this.dispatch(tasks) : Promise.resolve()),
    );
  }

  onModuleInit(): void {
    // Deleting an image cancels its open task first (its rows then go with the image).
    this.images.onBeforeDelete(async (image: ImageEntity) => {
      const open = await this.store.openTasksForImages(undefined, [image.id]);
      for (const task of open) await this.cancelTask(task);
    });
    // Tasks are found for the access rule here: the image's project (or its uploader) decides.
    this.access.registerLoader('task', async (id) => {
      const r = await this.store.findWithImage(String(id));
      return r ? { subject: { ownerId: r.imageUserId, projectId: r.projectId }, entity: r.task } : null;
    });
  }

  resolvePriority(user: AuthUser, requested?: number): number {
    if (requested === undefined) return user.isPremium ? 10 : 1;
    if (!user.isPremium && requested > 5) {
      throw new BadRequestException(['priority must not be greater than 5 for non-premium users']);
    }
    return requested;
  }

  /** 202 with a new task, or 200 with the image's open task (idempotent). `image`: allowed by the access rule. */
  async enqueue(
    user: AuthUser,
    image: ImageEntity,
    requested?: number,
  ): Promise<{ created: boolean; task: TaskView }> {
    const priority = this.resolvePriority(user, requested);
    if (!this.cfg.enabled) return { created: false, task: await this.segmentNow(user, image, priority) };
    const { created, tasks } = await this.createTasks(user, [image.id], priority, 'image not found');
    return { created: created.length > 0, task: toTaskView(tasks[0]) };
  }

  /**
   * `POST /api/projects/:id/segmentation`: every image of the project without an open task (with
   * `unsegmented`, only those without a current result either) gets one, and an image with an open
   * task contributes it; one call, all or nothing (429 past MAX_PENDING_TASKS_PER_USER), tasks of the
   * caller (their fair turn). At most MAX_IDS_PER_REQUEST images (400 beyond).
   */
  async enqueueProject(
    user: AuthUser,
    projectId: number,
    scope: 'all' | 'unsegmented',
    requested?: number,
  ): Promise<TaskView[]> {
    const priority = this.resolvePriority(user, requested);
    const ids = await this.store.projectImagesToQueue(projectId, scope, MAX_IDS_PER_REQUEST + 1);
    if (ids.length > MAX_IDS_PER_REQUEST) {
      throw new BadRequestException(
        `the project has more than ${MAX_IDS_PER_REQUEST} images to queue; queue them in batches`,
      );
    }
    if (ids.length === 0) return [];
    const { tasks } = await this.createTasks(user, ids, priority, 'one or more images were not found');
    return tasks.map(toTaskView);
  }

  async enqueueBatch(user: AuthUser, imageIds: number[], requested?: number): Promise<TaskView[]> {
    const ids = [...new Set(imageIds)];
    const priority = this.resolvePriority(user, requested);
    const { tasks } = await this.createTasks(user, ids, priority, 'one or more images were not found');
    const byImage = new Map(tasks.map((t) => [t.imageId, t]));
    return ids.map((id) => toTaskView(byImage.get(id)!));
  }

  /**
   * Reuses the images' open tasks and inserts the rest, or refuses the whole request: 404 when an
   * image is not the user's, 429 past MAX_PENDING_TASKS_PER_USER. One round trip to PostgreSQL, shared
   * with the user's other concurrent requests (EnqueueBatcher); new tasks are queued before it returns.
   */
  private async createTasks(
    user: AuthUser,
    imageIds: number[],
    priority: number,
    notFound: string,
  ): Promise<{ created: TaskEntity[]; tasks: TaskEntity[] }> {
    if (!imageIds.every(isDbId)) throw new NotFoundException(notFound);
    const o = await this.batcher.submit(
      user.id,
      this.access.projectsAllowing(user, 'edit'),
      imageIds,
      priority,
    );
    if (o.kind === 'ok') return o;
    if (o.kind === 'missing') throw new NotFoundException(notFound);
    throw new HttpException(
      `too many pending tasks: ${o.pending} open, limit ${this.cfg.maxPendingTasksPerUser}`,
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }

  /**
   * Hands new tasks to Bull, with their `segmentation:queued` events in the same Redis round trip. A Redis
   * failure is logged, not returned: the task is recorded and will be queued (the events still go out).
   */
  async dispatch(tasks: TaskEntity[]): Promise<void> {
    if (tasks.length === 0) return;
    const queued = (t: TaskEntity) => ({ priority: t.priority });
    let sent = false;
    try {
      sent = await withTimeout(
        this.queue.addBulk(
          tasks.map((t) => ({
            jobId: t.jobId,
            priority: t.priority,
            data: segmentJobData(t),
          })),
          tasks.flatMap((t) => this.realtime.taskEventPublication(t, 'segmentation:queued', queued(t)) ?? []),
        ),
        REDIS_ENQUEUE_TIMEOUT_MS,
        'queue did not accept the jobs in time',
      );
      // No `enqueued_at` write here: the queue wait of a task queued at once counts from its `created_at`
      // (the same instant), and a second statement per enqueue cost one more commit (issue 24). Only a
      // task queued later by the reconciler records when it reached Bull.
    } catch (err) {
      this.logger.warn(
        { tasks: tasks.length, err: (err as Error).message },
        'jobs not queued now; the reconciler will queue them',
      );
    }
    // Not sent with the jobs (QUEUE_FAIRNESS=none, Redis failed or was slow): sent on their own. After a
    // timeout the late MULTI may still deliver them, so a client can then see `queued` twice.
    if (!sent) for (const t of tasks) this.realtime.toTask(t, 'segmentation:queued', queued(t));
  }

  /** The tasks of a project (any member), or without `projectId` the tasks the caller queued. */
  async listTasks(
    user: AuthUser,
    projectId: number | undefined,
    status: TaskStatus | undefined,
    page: number,
    limit: number,
  ) {
    const { items, total } =
      projectId === undefined
        ? await this.store.listOwned(user.id, status, page, limit)
        : await this.store.listProject(projectId, status, page, limit);
    return { items: items.map(toTaskView), total, page, limit };
  }

  /** Cancels a task the access rule allowed (409 when it has finished). */
  async cancel(task: TaskEntity): Promise<TaskView> {
    const taskId = task.taskId;
    const cancelled = await this.cancelTask(task);
    if (!cancelled)
      throw new ConflictException(
        `task is already ${(await this.store.findById(taskId))?.status ?? 'finished'}`,
      );
    return toTaskView(cancelled);
  }

  /** Queued: its job is removed. Processing: the worker drops the result when it arrives. */
  async cancelTask(task: TaskEntity): Promise<TaskEntity | null> {
    const cancelled = await this.store.transition(task.taskId, OPEN_TASK_STATUSES, {
      status: 'cancelled',
      completed: true,
      imageStatus: 'cancelled',
    });
    if (!cancelled) return null;
    await this.queue.removeIfNotActive(cancelled.jobId, cancelled.priority).catch(() => false);
    this.realtime.toTask(cancelled, 'segmentation:cancelled', {});
    return cancelled;
  }

  deadLetter(): Promise<TaskView[]> {
    return this.store.listDeadLettered().then((rows) => rows.map(toTaskView));
  }

  /** Queues a dead-lettered task again with its attempts reset, under a new job id. */
  async retryDeadLetter(taskId: string): Promise<TaskView> {
    const task = await this.store.findById(taskId);
    if (!task || !task.deadLettered) throw new NotFoundException('no dead-lettered task with this id');
    const jobId = `${task.taskId}:r${Date.now().toString(36)}`;
    let requeued: TaskEntity | null;
    try {
      requeued = await this.store.transition(taskId, ['failed'], {
        status: 'queued',
        deadLettered: false,
        resetAttempts: true,
        progress: 0,
        errorMessage: null,
        jobId,
        clearTimes: true,
        imageStatus: 'queued',
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23505')
        throw new ConflictException('the image already has an open task');
      throw err;
    }
    if (!requeued) throw new ConflictException('task is no longer dead-lettered');
    await this.queue.removeFromDeadLetter(task.jobId).catch(() => undefined);
    await this.dispatch([requeued]);
    return toTaskView(requeued);
  }

  /** ENABLE_QUEUE=false: segment in the request through the breaker (CONTRACT §3). */
  private async segmentNow(user: AuthUser, image: ImageEntity, priority: number): Promise<TaskView> {
    if (!this.ml)
      throw new HttpException(
        'segmentation is not available in this process',
        HttpStatus.SERVICE_UNAVAILABLE,
      );
    if (!this.ml.isCallable()) throw this.circuitOpen();
    const { created, tasks } = await this.createTasks(user, [image.id], priority, 'image not found');
    const task = created[0] ?? tasks[0];
    if (!created.length) return toTaskView(task); // already open (queued by an earlier queue-mode request)
    await this.store.transition(task.taskId, ['queued'], {
      status: 'processing',
      started: true,
      progress: 10,
      imageStatus: 'processing',
    });
    try {
      const results = await this.ml.segment({ image_path: image.storagePath, task_id: task.taskId });
      const done = await this.store.complete(task.taskId, results);
      return toTaskView(done ?? (await this.store.findById(task.taskId))!);
    } catch (err) {
      const reached = !(err instanceof MlCircuitOpenError);
      await this.store.transition(task.taskId, OPEN_TASK_STATUSES, {
        status: 'failed',
        errorMessage: (err as Error).message,
        attemptsDelta: reached ? 1 : 0,
        completed: true,
        imageStatus: 'failed',
      });
      if (err instanceof MlCircuitOpenError) throw this.circuitOpen();
      if (err instanceof MlBadInputError)
        throw new HttpException(`the ML service rejected the image: ${err.message}`, 422);
      throw new HttpException('the ML service failed', HttpStatus.BAD_GATEWAY);
    }
  }

  private circuitOpen(): HttpException {
    const retryAfter = Math.max(1, Math.ceil(this.mlCfg.resetTimeoutMs / 1000));
    const e = new HttpException('the ML service is unavailable, retry later', HttpStatus.SERVICE_UNAVAILABLE);
    (e as HttpException & { retryAfter?: number }).retryAfter = retryAfter;
    return e;
  }
}
