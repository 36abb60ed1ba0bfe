import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/configuration';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, Repository, SelectQueryBuilder } from 'typeorm';
import { OPEN_TASK_STATUSES, TaskStatus, ImageSegmentationStatus } from '../common/contracts';
import type { MlSegmentResults } from '../common/contracts';
import { TaskEntity } from './task.entity';
import { fromWirePolygon } from './views';
import { PreparedQueries } from '../database/prepared-queries';
import { StatementBatcher } from '../common/statement-batcher';

export interface EnqueueItem {
  /** Ordinal of the request this item belongs to (requests are decided in this order). */
  req: number;
  imageId: number;
  /** Id for the task if one is created. */
  taskId: string;
  priority: number;
}

/** A task with what decides access to it: its image's uploader and project. */
export interface TaskAccessRow {
  task: TaskEntity;
  imageUserId: number;
  projectId: number | null;
}

export type EnqueueOutcome =
  { kind: 'ok'; created: TaskEntity[]; tasks: TaskEntity[] } | { kind: 'missing' | 'limit'; pending: number };

/**
 * Every read and write of tasks and results. State changes are conditional updates (`WHERE status IN
 * …`) so that concurrent workers, cancellations and retries cannot overwrite each other; lag-tolerant
 * lists are read from a replica when one is configured. An image's `segmentation_status` mirrors its
 * latest task, so it is written here, in the same statement as the task's state (never out of step).
 */
@Injectable()
export class TaskStore {
  /**
   * A worker's claims and completions, coalesced into one statement (see StatementBatcher): a slot
   * whose ML call returned completes its job and claims its next one in the same turn of the event
   * loop, and under load the writes of the next QUEUE_WRITE_WINDOW_MS join them. With a slow ML
   * service the calls of a worker's slots are answered one by one, a few milliseconds apart; without
   * the window each answer paid a statement, a transaction, a commit and the wake-ups around them on
   * its own (bench/RESULTS.md, finding 11; the window went from 5 to 10 ms in finding 13). A waiting
   * batch leaves before the window is up once it holds 2 × QUEUE_CONCURRENCY writes, as many as can wait
   * at once (each slot's running job claims, its one finishing job completes): no one is left to join,
   * and with a fast ML service the window only held every slot back (finding 17).
   */
  private readonly writes: StatementBatcher<WorkerWrite, TaskEntity | null>;
  private readonly peeks = new StatementBatcher<string, { status: TaskStatus; storagePath: string } | null>(
    (ids) => this.peekMany(ids),
    async (id) => (await this.peekMany([id]))[0],
  );
  /** Task reads of concurrent requests (any users), one statement per batch. */
  private readonly accessReads = new StatementBatcher<string, TaskAccessRow | null>(
    (ids) => this.findWithImageMany(ids),
    async (id) => (await this.findWithImageMany([id]))[0],
    { maxBatch: 200 },
  );

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @InjectRepository(TaskEntity) private readonly tasks: Repository<TaskEntity>,
    private readonly prepared: PreparedQueries,
    @Inject(queueConfig.KEY) queue: ConfigType<typeof queueConfig>,
  ) {
    this.writes = new StatementBatcher<WorkerWrite, TaskEntity | null>(
      (items) => this.writeMany(items),
      (item) => (item.kind === 'claim' ? this.claimOne(item.taskId) : this.completeOne(item.taskId, item.results)),
      { lingerMs: queue.writeWindowMs, fullAt: 2 * queue.concurrency },
    );
  }

  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(fn);
  }

  /**
   * Enqueues the items of several requests of one user in one round trip (`spheroseg_enqueue`,
   * migrations EnqueueFunction, Projects): under the user's advisory lock, each request in order either
   * gets its images' open tasks (inserting the missing ones), or is refused whole (`missing`: an image
   * is neither the user's personal image nor in one of `projects`, the projects the user may edit;
   * `limit`: past `max` open tasks). Returns one outcome per request ordinal.
   */
  async enqueueMany(
    userId: number,
    projects: number[],
    items: EnqueueItem[],
    max: number,
  ): Promise<Map<number, EnqueueOutcome>> {
    const rows = await this.prepared.rows<
      Row & { o_req: number; o_outcome: string; o_created: boolean; o_pending: number }
    >(
      'SELECT * FROM spheroseg_enqueue($1, $2::int[], $3::int[], $4::int[], $5::uuid[], $6::smallint[], $7)',
      [
        userId,
        projects,
        items.map((i) => i.req),
        items.map((i) => i.imageId),
        items.map((i) => i.taskId),
        items.map((i) => i.priority),
        max,
      ],
    );
    const out = new Map<number, EnqueueOutcome>();
    for (const r of rows) {
      if (r.o_outcome !== 'ok') {
        out.set(r.o_req, { kind: r.o_outcome as 'missing' | 'limit', pending: r.o_pending });
        continue;
      }
      let o = out.get(r.o_req);
      if (!o || o.kind !== 'ok') out.set(r.o_req, (o = { kind: 'ok', created: [], tasks: [] }));
      const task = fromRow(r);
      o.tasks.push(task);
      if (r.o_created) o.created.push(task);
    }
    return out;
  }

  openTasksForImages(m: EntityManager | undefined, imageIds: number[]): Promise<TaskEntity[]> {
    if (imageIds.length === 0) return Promise.resolve([]);
    return (m ?? this.ds.manager)
      .getRepository(TaskEntity)
      .find({ where: { imageId: In(imageIds), status: In([...OPEN_TASK_STATUSES]) } });
  }

  findById(taskId: string): Promise<TaskEntity | null> {
    return this.tasks.findOneBy({ taskId });
  }

  /**
   * A task with its image's uploader and project, for the access rule (`GET /api/segmentation/tasks/:id`
   * is a hot path): reads of concurrent requests share one prepared statement (one round trip, one
   * result for all) while the previous one is at PostgreSQL; a read always leaves after it was asked
   * for, so it sees every earlier commit. `taskId` must be a UUID (lower case, as the route's pipe gives it).
   */
  findWithImage(taskId: string): Promise<TaskAccessRow | null> {
    return this.accessReads.run(taskId);
  }

  private async findWithImageMany(taskIds: string[]): Promise<Array<TaskAccessRow | null>> {
    const rows = await this.prepared.rows(
      'SELECT q.*, i.user_id AS image_user_id, i.project_id FROM queue_jobs q JOIN images i ON i.id = q.image_id WHERE q.task_id = ANY($1::uuid[])',
      [[...new Set(taskIds)]],
    );
    const byId = new Map(rows.map((r) => [r.task_id as string, r]));
    return taskIds.map((id) => {
      const r = byId.get(id.toLowerCase());
      return r
        ? {
            task: fromRow(r),
            imageUserId: r.image_user_id as number,
            projectId: (r.project_id as number | null) ?? null,
          }
        : null;
    });
  }

  /**
   * The images of a project to queue (`POST /api/projects/:id/segmentation`), in id order, at most
   * `limit`: every image (`all`) or those without a current result (`unsegmented`); an image with an
   * open task is always among them (its task is reused).
   */
  async projectImagesToQueue(
    projectId: number,
    scope: 'all' | 'unsegmented',
    limit: number,
  ): Promise<number[]> {
    const rows = (await this.ds.query(
      `SELECT i.id FROM images i
        WHERE i.project_id = $1
          AND ($2 = 'all'
               OR NOT EXISTS (SELECT 1 FROM segmentation_results r WHERE r.image_id = i.id AND r.is_current)
               OR EXISTS (SELECT 1 FROM queue_jobs q WHERE q.image_id = i.id AND q.status IN ('queued', 'processing')))
        ORDER BY i.id LIMIT $3`,
      [projectId, scope, limit],
    )) as Array<{ id: number }>;
    return rows.map((r) => r.id);
  }

  /** The tasks of a project's images, newest first (lag-tolerant: a replica when configured). */
  /** The tasks of a project's images (any member's), newest first. */
  listProject(projectId: number, status: TaskStatus | undefined, page: number, limit: number) {
    return this.listPage(status, page, limit, (qb) =>
      qb.innerJoin('images', 'i', 'i.id = t.image_id').where('i.project_id = :projectId', { projectId }),
    );
  }

  /** The tasks a user queued, newest first. */
  listOwned(userId: number, status: TaskStatus | undefined, page: number, limit: number) {
    return this.listPage(status, page, limit, (qb) => qb.where('t.userId = :userId', { userId }));
  }

  /** One page of tasks in `scope`, optionally of one status, from a replica when configured (lag-tolerant). */
  private async listPage(
    status: TaskStatus | undefined,
    page: number,
    limit: number,
    scope: (qb: SelectQueryBuilder<TaskEntity>) => SelectQueryBuilder<TaskEntity>,
  ) {
    const runner = this.ds.createQueryRunner('slave');
    try {
      const qb = scope(this.ds.createQueryBuilder(TaskEntity, 't', runner));
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

  listDeadLettered(limit = 500): Promise<TaskEntity[]> {
    return this.tasks.find({
      where: { deadLettered: true, status: 'failed' },
      order: { updatedAt: 'DESC' },
      take: limit,
    });
  }

  /**
   * Read-only: the task's status and its image's storage path (null when the task is gone). Used by
   * the worker's look-ahead; concurrent peeks of this process share one statement.
   */
  peekForRun(taskId: string): Promise<{ status: TaskStatus; storagePath: string } | null> {
    return this.peeks.run(taskId);
  }

  private async peekMany(
    taskIds: string[],
  ): Promise<Array<{ status: TaskStatus; storagePath: string } | null>> {
    const rows = await this.prepared.rows<{ task_id: string; status: TaskStatus; storage_path: string }>(
      'SELECT q.task_id, q.status, i.storage_path FROM queue_jobs q JOIN images i ON i.id = q.image_id WHERE q.task_id = ANY($1::uuid[])',
      [taskIds],
    );
    const byId = new Map(rows.map((r) => [r.task_id, { status: r.status, storagePath: r.storage_path }]));
    return taskIds.map((id) => byId.get(id) ?? null);
  }

  /** True while the task is `processing` (claimed by a worker and neither cancelled nor finished). */
  async isProcessing(taskId: string): Promise<boolean> {
    const rows = await this.prepared.rows<{ status: TaskStatus }>(
      'SELECT status FROM queue_jobs WHERE task_id = $1',
      [taskId],
    );
    return rows[0]?.status === 'processing';
  }

  /**
   * Conditional transition in one statement. Returns the updated task, or null when it was not in one
   * of `from` (e.g. cancelled meanwhile). With `imageStatus`, the image's status changes in the same
   * statement; the returned task then carries the image's storage path.
   */
  async transition(
    taskId: string,
    from: readonly TaskStatus[],
    patch: Partial<
      Pick<TaskEntity, 'status' | 'progress' | 'errorMessage' | 'deadLettered' | 'jobId' | 'priority'>
    > & {
      attemptsDelta?: number;
      resetAttempts?: boolean;
      started?: boolean;
      completed?: boolean;
      clearTimes?: boolean;
      imageStatus?: ImageSegmentationStatus;
    },
    m?: EntityManager,
  ): Promise<TaskEntity | null> {
    const sets: string[] = ['updated_at = now()'];
    const params: unknown[] = [taskId, [...from]];
    const param = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (patch.status) sets.push(`status = ${param(patch.status)}`);
    if (patch.progress !== undefined) sets.push(`progress = ${param(patch.progress)}`);
    if (patch.errorMessage !== undefined) sets.push(`error_message = ${param(patch.errorMessage)}`);
    if (patch.deadLettered !== undefined) sets.push(`dead_lettered = ${param(patch.deadLettered)}`);
    if (patch.jobId) sets.push(`job_id = ${param(patch.jobId)}`);
    if (patch.priority !== undefined) sets.push(`priority = ${param(patch.priority)}`);
    if (patch.attemptsDelta) sets.push(`attempts = attempts + ${param(patch.attemptsDelta)}`);
    if (patch.resetAttempts) sets.push('attempts = 0');
    if (patch.started) sets.push('processing_started_at = COALESCE(processing_started_at, now())');
    if (patch.completed) sets.push('processing_completed_at = now()');
    if (patch.clearTimes) sets.push('processing_started_at = NULL, processing_completed_at = NULL');
    const update = `UPDATE queue_jobs SET ${sets.join(', ')} WHERE task_id = $1 AND status = ANY($2::varchar[]) RETURNING *`;
    const sql = patch.imageStatus
      ? `WITH t AS (${update}),
              i AS (UPDATE images SET segmentation_status = ${param(patch.imageStatus)}, updated_at = now()
                    FROM t WHERE images.id = t.image_id RETURNING images.storage_path, images.project_id)
         SELECT t.*, i.storage_path, i.project_id FROM t LEFT JOIN i ON TRUE`
      : update;
    // Outside a transaction: a prepared statement (the shapes are few and fixed, see `sets` above).
    const rows = m ? rowsOf(await m.query(sql, params)) : await this.prepared.rows(sql, params);
    return rows.length ? fromRow(rows[0]) : null;
  }

  async markEnqueued(taskIds: string[]): Promise<void> {
    await this.ds.query(
      'UPDATE queue_jobs SET enqueued_at = COALESCE(enqueued_at, now()) WHERE task_id = ANY($1::uuid[])',
      [taskIds],
    );
  }

  /**
   * Claims an open task for a worker: `processing`, progress 10, started now, its image `processing`;
   * returns the task with its image's storage path, or null when it is no longer open. Concurrent
   * claims of this process share one statement (one commit).
   */
  claim(taskId: string): Promise<TaskEntity | null> {
    return this.writes.run({ kind: 'claim', taskId });
  }

  private claimOne(taskId: string) {
    return this.transition(taskId, OPEN_TASK_STATUSES, {
      status: 'processing',
      started: true,
      progress: 10,
      imageStatus: 'processing',
    });
  }

  /**
   * One statement for a batch of claims and completions (`spheroseg_worker_writes`, migrations
   * WorkerWrites and WorkerWritesSetBased: planned once per connection): the claims' conditional UPDATEs
   * (task, then its image), then the completions' steps of `spheroseg_complete_task`, each one statement
   * for every task of the batch, in one transaction. They touch different rows
   * (a task being claimed has no result yet, and an image has one open task at a time). Rows are
   * matched back by position (`batch_ord`: 0 for claims, matched by task id).
   */
  private async writeMany(items: WorkerWrite[]) {
    const claimIds = items.flatMap((it) => (it.kind === 'claim' ? [it.taskId] : []));
    const cols: unknown[][] = [[], [], [], [], [], []];
    for (const it of items) if (it.kind === 'complete') completeArgs(it.results, it.taskId).forEach((v, k) => cols[k].push(v));
    const rows = await this.prepared.rows(
      `SELECT w.batch_ord, (w.task).*, w.storage_path, w.project_id
         FROM spheroseg_worker_writes($1::uuid[], $2::varchar[], $3::uuid[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[]) w`,
      [claimIds, [...OPEN_TASK_STATUSES], ...cols],
    );
    const claimed = new Map<string, Row>();
    const completed = new Map<number, Row>();
    for (const r of rows) {
      const ord = Number(r.batch_ord);
      if (ord === 0) claimed.set(r.task_id as string, r);
      else completed.set(ord, r);
    }
    // Completions by position, not by id: of two completions of one task in a batch only the first completes it.
    let ord = 0;
    return items.map((it) => {
      const r = it.kind === 'claim' ? claimed.get(it.taskId) : completed.get(++ord);
      return r ? fromRow(r) : null;
    });
  }

  /**
   * Writes the result and completes the task atomically and idempotently (`spheroseg_complete_task`,
   * migration CompleteTaskFunction): a task that is no longer open (cancelled, or completed by an
   * earlier run of the same job) gets no result. The conditional UPDATE takes the task's row lock, so
   * two runs of one job cannot both complete it. Concurrent completions of this process share one
   * statement (one transaction, one commit); a failed batch is retried task by task.
   */
  complete(taskId: string, results: MlSegmentResults): Promise<TaskEntity | null> {
    return this.writes.run({ kind: 'complete', taskId, results });
  }

  private async completeOne(taskId: string, results: MlSegmentResults): Promise<TaskEntity | null> {
    const rows = await this.prepared.rows(
      'SELECT * FROM spheroseg_complete_task($1, $2, $3, $4, $5, $6::json)',
      completeArgs(results, taskId),
    );
    return rows.length ? fromRow(rows[0]) : null;
  }

  /** Aggregates of recent history for the queue metrics (from the primary: admins expect fresh figures). */
  async recentStats(): Promise<{
    deadLettered: number;
    perMinute: number;
    avgWaitMs: number;
    avgProcessingMs: number;
  }> {
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
      const [{ locked }] = (await runner.query('SELECT pg_try_advisory_lock(727274003) AS locked')) as Array<{
        locked: boolean;
      }>;
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

  /**
   * Open tasks not touched for `graceMs`: candidates whose Bull job may be gone or stuck. One page in
   * (updated_at, task_id) order after `after`, so a pass walks every candidate: a backlog of live jobs
   * older than a lost one must not hide it.
   */
  staleOpenTasks(graceMs: number, after?: Pick<TaskEntity, 'updatedAt' | 'taskId'>, limit = 500): Promise<TaskEntity[]> {
    const q = this.tasks
      .createQueryBuilder('t')
      .where('t.status IN (:...open)', { open: [...OPEN_TASK_STATUSES] })
      .andWhere(`t.updatedAt < now() - make_interval(secs => :secs)`, { secs: graceMs / 1000 });
    // Keyed on the millisecond JavaScript's Date keeps (both truncate), so the cursor compares exactly:
    // a batch of tasks shares one updated_at to the microsecond.
    const at = `date_trunc('milliseconds', t.updated_at)`;
    if (after) q.andWhere(`(${at}, t.task_id) > (:at, :id)`, { at: after.updatedAt, id: after.taskId });
    return q.orderBy(at, 'ASC').addOrderBy('t.task_id', 'ASC').limit(limit).getMany();
  }
}

type Row = Record<string, unknown>;

/** What a worker writes for a task: its claim, or its completion with the ML results. */
type WorkerWrite = { kind: 'claim'; taskId: string } | { kind: 'complete'; taskId: string; results: MlSegmentResults };

/** The arguments of `spheroseg_complete_task` for one task (polygons as JSON text). */
function completeArgs(results: MlSegmentResults, taskId: string): unknown[] {
  return [
    taskId,
    results.image_width,
    results.image_height,
    Math.round(results.processing_time_ms),
    results.polygons.filter((p) => p.type === 'external').length,
    JSON.stringify(results.polygons.map(fromWirePolygon)),
  ];
}

/** `query()` of an UPDATE … RETURNING answers `[rows, count]`; a SELECT answers `rows`. */
function rowsOf(result: unknown): Row[] {
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  ) {
    return result[0] as Row[];
  }
  return result as Row[];
}

/** A raw `queue_jobs` row (snake_case) as an entity, plus the image's storage path when joined. */
function fromRow(r: Row): TaskEntity {
  return Object.assign(new TaskEntity(), {
    taskId: r.task_id as string,
    jobId: r.job_id as string,
    imageId: r.image_id as number,
    userId: r.user_id as number,
    status: r.status as TaskStatus,
    priority: r.priority as number,
    progress: r.progress as number,
    attempts: r.attempts as number,
    errorMessage: (r.error_message as string | null) ?? null,
    deadLettered: r.dead_lettered as boolean,
    enqueuedAt: (r.enqueued_at as Date | null) ?? null,
    startedAt: (r.processing_started_at as Date | null) ?? null,
    completedAt: (r.processing_completed_at as Date | null) ?? null,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    ...(r.storage_path !== undefined ? { storagePath: r.storage_path as string } : {}),
    ...(r.project_id !== undefined ? { projectId: (r.project_id as number | null) ?? null } : {}),
    ...(r.o_project !== undefined ? { projectId: (r.o_project as number | null) ?? null } : {}),
    ...(r.o_path !== undefined && r.o_path !== null ? { storagePath: r.o_path as string } : {}),
  });
}
