import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, Repository } from 'typeorm';
import { OPEN_TASK_STATUSES, TaskStatus, ImageSegmentationStatus } from '../common/contracts';
import type { MlSegmentResults } from '../common/contracts';
import { ResultEntity } from './result.entity';
import { TaskEntity } from './task.entity';
import { fromWirePolygon } from './views';

export interface NewTask {
  taskId: string;
  imageId: number;
  userId: number;
  priority: number;
}

/**
 * Every read and write of tasks and results. State changes are conditional updates (`WHERE status IN
 * …`) so that concurrent workers, cancellations and retries cannot overwrite each other; lag-tolerant
 * lists are read from a replica when one is configured.
 */
@Injectable()
export class TaskStore {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectRepository(TaskEntity) private readonly tasks: Repository<TaskEntity>,
    @InjectRepository(ResultEntity) private readonly results: Repository<ResultEntity>,
  ) {}

  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(fn);
  }

  /** Serialises enqueues of one user inside a transaction (pending-task limit stays exact). */
  async lockUser(m: EntityManager, userId: number): Promise<void> {
    await m.query('SELECT pg_advisory_xact_lock(727274002, $1)', [userId]);
  }

  countOpenForUser(m: EntityManager, userId: number): Promise<number> {
    return m.getRepository(TaskEntity).count({ where: { userId, status: In([...OPEN_TASK_STATUSES]) } });
  }

  openTasksForImages(m: EntityManager, imageIds: number[]): Promise<TaskEntity[]> {
    if (imageIds.length === 0) return Promise.resolve([]);
    return m.getRepository(TaskEntity).find({ where: { imageId: In(imageIds), status: In([...OPEN_TASK_STATUSES]) } });
  }

  async insertQueued(m: EntityManager, rows: NewTask[]): Promise<TaskEntity[]> {
    if (rows.length === 0) return [];
    const repo = m.getRepository(TaskEntity);
    const entities = rows.map((r) =>
      repo.create({ ...r, jobId: r.taskId, status: 'queued', progress: 0, attempts: 0, errorMessage: null }),
    );
    await repo.insert(entities);
    await this.setImageStatus(m, rows.map((r) => r.imageId), 'queued');
    return repo.find({ where: { taskId: In(rows.map((r) => r.taskId)) } });
  }

  async setImageStatus(m: EntityManager | undefined, imageIds: number[], status: ImageSegmentationStatus): Promise<void> {
    if (imageIds.length === 0) return;
    await (m ?? this.ds.manager).query(
      'UPDATE images SET segmentation_status = $1, updated_at = now() WHERE id = ANY($2::int[])',
      [status, imageIds],
    );
  }

  findById(taskId: string): Promise<TaskEntity | null> {
    return this.tasks.findOneBy({ taskId });
  }

  findOwned(userId: number, taskId: string): Promise<TaskEntity | null> {
    return this.tasks.findOneBy({ taskId, userId });
  }

  async listOwned(userId: number, status: TaskStatus | undefined, page: number, limit: number) {
    const runner = this.ds.createQueryRunner('slave'); // lag-tolerant: a replica when configured
    try {
      const qb = this.ds.createQueryBuilder(TaskEntity, 't', runner).where('t.userId = :userId', { userId });
      if (status) qb.andWhere('t.status = :status', { status });
      const [items, total] = await qb
        .orderBy('t.createdAt', 'DESC')
        .addOrderBy('t.taskId', 'DESC')
        .skip((page - 1) * limit)
        .take(limit)
        .getManyAndCount();
      return { items, total };
    } finally {
      await runner.release();
    }
  }

  currentResult(imageId: number): Promise<ResultEntity | null> {
    return this.results.findOneBy({ imageId, isCurrent: true });
  }

  listDeadLettered(limit = 500): Promise<TaskEntity[]> {
    return this.tasks.find({ where: { deadLettered: true, status: 'failed' }, order: { updatedAt: 'DESC' }, take: limit });
  }

  /**
   * Conditional transition. Returns the updated row, or null when the task was not in one of `from`
   * (e.g. cancelled meanwhile).
   */
  async transition(
    taskId: string,
    from: readonly TaskStatus[],
    patch: Partial<Pick<TaskEntity, 'status' | 'progress' | 'errorMessage' | 'deadLettered' | 'jobId' | 'priority'>> & {
      attemptsDelta?: number;
      resetAttempts?: boolean;
      started?: boolean;
      completed?: boolean;
      clearTimes?: boolean;
    },
    m?: EntityManager,
  ): Promise<TaskEntity | null> {
    const sets: string[] = ['updated_at = now()'];
    const params: unknown[] = [taskId, [...from]];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      sets.push(sql.replace('?', `$${params.length}`));
    };
    if (patch.status) add('status = ?', patch.status);
    if (patch.progress !== undefined) add('progress = ?', patch.progress);
    if (patch.errorMessage !== undefined) add('error_message = ?', patch.errorMessage);
    if (patch.deadLettered !== undefined) add('dead_lettered = ?', patch.deadLettered);
    if (patch.jobId) add('job_id = ?', patch.jobId);
    if (patch.priority !== undefined) add('priority = ?', patch.priority);
    if (patch.attemptsDelta) add('attempts = attempts + ?', patch.attemptsDelta);
    if (patch.resetAttempts) sets.push('attempts = 0');
    if (patch.started) sets.push('processing_started_at = COALESCE(processing_started_at, now())');
    if (patch.completed) sets.push('processing_completed_at = now()');
    if (patch.clearTimes) sets.push('processing_started_at = NULL, processing_completed_at = NULL');
    const rows = (await (m ?? this.ds.manager).query(
      `UPDATE queue_jobs SET ${sets.join(', ')} WHERE task_id = $1 AND status = ANY($2::varchar[]) RETURNING task_id`,
      params,
    )) as [Array<{ task_id: string }>, number] | Array<{ task_id: string }>;
    const list = Array.isArray(rows[0]) ? (rows[0] as Array<{ task_id: string }>) : (rows as Array<{ task_id: string }>);
    if (list.length === 0) return null;
    return (m ?? this.ds.manager).getRepository(TaskEntity).findOneBy({ taskId });
  }

  async markEnqueued(taskId: string): Promise<void> {
    await this.ds.query('UPDATE queue_jobs SET enqueued_at = COALESCE(enqueued_at, now()) WHERE task_id = $1', [taskId]);
  }

  /**
   * Writes the result and completes the task in one transaction, idempotently: a task that is no
   * longer open (cancelled, or completed by an earlier run of the same job) gets no result.
   */
  async complete(taskId: string, results: MlSegmentResults): Promise<TaskEntity | null> {
    return this.ds.transaction(async (m) => {
      const locked = (await m.query(
        `SELECT task_id, image_id, status FROM queue_jobs WHERE task_id = $1 FOR UPDATE`,
        [taskId],
      )) as Array<{ task_id: string; image_id: number; status: TaskStatus }>;
      const row = locked[0];
      if (!row || !OPEN_TASK_STATUSES.includes(row.status)) return null;
      await m.query('UPDATE segmentation_results SET is_current = FALSE WHERE image_id = $1 AND is_current', [row.image_id]);
      await m.getRepository(ResultEntity).insert({
        taskId,
        imageId: row.image_id,
        isCurrent: true,
        imageWidth: results.image_width,
        imageHeight: results.image_height,
        processingTimeMs: Math.round(results.processing_time_ms),
        polygonCount: results.polygons.filter((p) => p.type === 'external').length,
        polygons: results.polygons.map(fromWirePolygon),
      });
      const done = await this.transition(
        taskId,
        OPEN_TASK_STATUSES,
        { status: 'completed', progress: 100, errorMessage: null, attemptsDelta: 1, started: true, completed: true },
        m,
      );
      await this.setImageStatus(m, [row.image_id], 'completed');
      return done;
    });
  }

  /** Aggregates of recent history for the queue metrics (read from a replica when configured). */
  async recentStats(): Promise<{ deadLettered: number; perMinute: number; avgWaitMs: number; avgProcessingMs: number }> {
    const rows = (await this.ds.query(`
      SELECT
        (SELECT count(*) FROM queue_jobs WHERE dead_lettered AND status = 'failed')::int AS dead,
        (SELECT count(*) FROM queue_jobs WHERE status = 'completed'
           AND processing_completed_at > now() - interval '5 minutes')::float / 5 AS per_minute,
        (SELECT COALESCE(avg(EXTRACT(EPOCH FROM (processing_started_at - COALESCE(enqueued_at, created_at))) * 1000), 0)
           FROM queue_jobs WHERE processing_started_at > now() - interval '1 hour') AS avg_wait,
        (SELECT COALESCE(avg(EXTRACT(EPOCH FROM (processing_completed_at - processing_started_at)) * 1000), 0)
           FROM queue_jobs WHERE status = 'completed' AND processing_completed_at > now() - interval '1 hour') AS avg_proc
    `)) as Array<{ dead: number; per_minute: number; avg_wait: string; avg_proc: string }>;
    const r = rows[0];
    return {
      deadLettered: Number(r.dead),
      perMinute: Math.round(Number(r.per_minute) * 100) / 100,
      avgWaitMs: Math.round(Number(r.avg_wait)),
      avgProcessingMs: Math.round(Number(r.avg_proc)),
    };
  }

  /**
   * Runs `fn` only if this process wins the cluster-wide reconciliation lock (one pass at a time).
   * Returns undefined when another process holds it.
   */
  async withReconcileLock<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const runner = this.ds.createQueryRunner('master');
    await runner.connect();
    try {
      const [{ locked }] = (await runner.query('SELECT pg_try_advisory_lock(727274003) AS locked')) as Array<{ locked: boolean }>;
      if (!locked) return undefined;
      try {
        return await fn();
      } finally {
        await runner.query('SELECT pg_advisory_unlock(727274003)');
      }
    } finally {
      await runner.release();
    }
  }

  /** Open tasks not touched for `graceMs`: candidates whose Bull job may be gone or stuck. */
  staleOpenTasks(graceMs: number, limit = 500): Promise<TaskEntity[]> {
    return this.tasks
      .createQueryBuilder('t')
      .where('t.status IN (:...open)', { open: [...OPEN_TASK_STATUSES] })
      .andWhere(`t.updatedAt < now() - make_interval(secs => :secs)`, { secs: graceMs / 1000 })
      .orderBy('t.updatedAt', 'ASC')
      .take(limit)
      .getMany();
  }
}
