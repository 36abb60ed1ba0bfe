import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ImageEntity } from '../images/image.entity';
import { ImagesService } from '../images/images.service';

/** Images removed per batch (one DELETE, bounded work between two checks of shutdown). */
export const SWEEP_BATCH = 200;
/** How often any api process looks for a project left `deleting` (e.g. by a process that died). */
const SWEEP_INTERVAL_MS = 30_000;
/** Advisory lock class of a project's sweep (second key: the project id). */
const SWEEP_LOCK = 727274010;

/**
 * Finishes `DELETE /api/projects/:id` in the background. The request marked the project `deleting`
 * (one statement: it is gone for every member at once) and answered 204; here, under a per-project
 * advisory lock (one sweeper at a time across processes), in batches of SWEEP_BATCH images in id
 * order: each image's open task is cancelled (the before-delete hooks, as `DELETE /api/images/:id`
 * does), its file and every variant are removed, then the batch's rows go in one statement (tasks and
 * results by cascade); when no image is left, the project row goes (members by cascade).
 *
 * Every step is idempotent, and files go before rows, so a crash anywhere leaves a `deleting` project
 * whose remaining rows still name every file left: the next sweep (at start, then every 30 s on every
 * api process) finishes it. Only images of that project are ever selected.
 */
@Injectable()
export class ProjectSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ProjectSweeper.name);
  private running: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  private timer?: NodeJS.Timeout;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly images: ImagesService,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.kick(), SWEEP_INTERVAL_MS);
    this.timer.unref();
    this.kick();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Starts a sweep now (or right after the one running). Never throws. */
  kick(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.sweepAll()
      .catch((err: Error) => this.logger.error({ err: err.message }, 'project sweep failed; retried later'))
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopping) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when no sweep is running (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async sweepAll(): Promise<void> {
    const rows = (await this.db.query(
      `SELECT id FROM projects WHERE deleting_at IS NOT NULL ORDER BY deleting_at, id`,
    )) as Array<{ id: number }>;
    for (const { id } of rows) {
      if (this.stopping) return;
      await this.sweep(id);
    }
  }

  private async sweep(projectId: number): Promise<void> {
    const runner = this.db.createQueryRunner('master');
    await runner.connect();
    try {
      const [{ locked }] = (await runner.query('SELECT pg_try_advisory_lock($1, $2) AS locked', [
        SWEEP_LOCK,
        projectId,
      ])) as Array<{ locked: boolean }>;
      if (!locked) return; // another process is sweeping it
      try {
        const started = Date.now();
        let removed = 0;
        for (;;) {
          if (this.stopping) return;
          const batch = (await this.images.imagesOfProject(projectId, SWEEP_BATCH)) as ImageEntity[];
          if (batch.length === 0) break;
          for (const image of batch) {
            await this.images.beforeRemove(image);
            await this.images.removeFiles(image);
          }
          await runner.query('DELETE FROM images WHERE project_id = $1 AND id = ANY($2::int[])', [
            projectId,
            batch.map((i) => i.id),
          ]);
          removed += batch.length;
        }
        await runner.query(
          `DELETE FROM projects p WHERE p.id = $1 AND p.deleting_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM images i WHERE i.project_id = p.id)`,
          [projectId],
        );
        this.logger.log({ projectId, images: removed, durationMs: Date.now() - started }, 'project deleted');
      } finally {
        await runner.query('SELECT pg_advisory_unlock($1, $2)', [SWEEP_LOCK, projectId]);
      }
    } finally {
      await runner.release();
    }
  }
}
