import { MigrationInterface, QueryRunner } from 'typeorm';

/** Users, images, the task record (queue_jobs) and segmentation results (CONTRACT §7). */
export class InitialSchema1764370000000 implements MigrationInterface {
  name = 'InitialSchema1764370000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE users (
        id            SERIAL PRIMARY KEY,
        email         VARCHAR(254) NOT NULL,
        password_hash VARCHAR(255) NOT NULL,
        role          VARCHAR(16)  NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
        is_premium    BOOLEAN      NOT NULL DEFAULT FALSE,
        created_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
        updated_at    TIMESTAMPTZ  NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE UNIQUE INDEX idx_users_email ON users (lower(email))`);

    await q.query(`
      CREATE TABLE images (
        id                   SERIAL PRIMARY KEY,
        user_id              INTEGER      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        original_name        VARCHAR(255) NOT NULL,
        storage_path         VARCHAR(255) NOT NULL UNIQUE,
        mime_type            VARCHAR(64)  NOT NULL,
        size_bytes           BIGINT       NOT NULL,
        width                INTEGER      NOT NULL,
        height               INTEGER      NOT NULL,
        segmentation_status  VARCHAR(16)  NOT NULL DEFAULT 'none'
          CHECK (segmentation_status IN ('none','queued','processing','completed','failed','cancelled')),
        created_at           TIMESTAMPTZ  NOT NULL DEFAULT now(),
        updated_at           TIMESTAMPTZ  NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX idx_images_user_created ON images (user_id, created_at DESC, id DESC)`);

    await q.query(`
      CREATE TABLE queue_jobs (
        task_id                 UUID         PRIMARY KEY,
        job_id                  VARCHAR(128) NOT NULL,
        image_id                INTEGER      NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        user_id                 INTEGER      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        status                  VARCHAR(16)  NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued','processing','completed','failed','cancelled')),
        priority                SMALLINT     NOT NULL CHECK (priority BETWEEN 1 AND 10),
        progress                SMALLINT     NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        attempts                INTEGER      NOT NULL DEFAULT 0,
        error_message           TEXT,
        dead_lettered           BOOLEAN      NOT NULL DEFAULT FALSE,
        enqueued_at             TIMESTAMPTZ,
        processing_started_at   TIMESTAMPTZ,
        processing_completed_at TIMESTAMPTZ,
        created_at              TIMESTAMPTZ  NOT NULL DEFAULT now(),
        updated_at              TIMESTAMPTZ  NOT NULL DEFAULT now(),
        CONSTRAINT uq_queue_jobs_job_id UNIQUE (job_id)
      )`);
    await q.query(`CREATE INDEX idx_queue_jobs_status ON queue_jobs (status)`);
    await q.query(`CREATE INDEX idx_queue_jobs_created ON queue_jobs (created_at)`);
    await q.query(`CREATE INDEX idx_queue_jobs_user_status ON queue_jobs (user_id, status, created_at DESC)`);
    await q.query(`CREATE INDEX idx_queue_jobs_image ON queue_jobs (image_id)`);
    // One open task per image, enforced by the database so concurrent enqueues cannot both win.
    await q.query(
      `CREATE UNIQUE INDEX uq_queue_jobs_open_image ON queue_jobs (image_id) WHERE status IN ('queued','processing')`,
    );
    await q.query(`CREATE INDEX idx_queue_jobs_dead ON queue_jobs (updated_at DESC) WHERE dead_lettered`);

    await q.query(`
      CREATE TABLE segmentation_results (
        id                 SERIAL PRIMARY KEY,
        task_id            UUID        NOT NULL UNIQUE REFERENCES queue_jobs(task_id) ON DELETE CASCADE,
        image_id           INTEGER     NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        is_current         BOOLEAN     NOT NULL DEFAULT TRUE,
        image_width        INTEGER     NOT NULL,
        image_height       INTEGER     NOT NULL,
        processing_time_ms INTEGER     NOT NULL,
        polygon_count      INTEGER     NOT NULL,
        polygons           JSONB       NOT NULL,
        created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE UNIQUE INDEX uq_segmentation_results_current ON segmentation_results (image_id) WHERE is_current`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS segmentation_results`);
    await q.query(`DROP TABLE IF EXISTS queue_jobs`);
    await q.query(`DROP TABLE IF EXISTS images`);
    await q.query(`DROP TABLE IF EXISTS users`);
  }
}
