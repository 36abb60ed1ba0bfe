import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Projects shared with collaborators (CONTRACT §3 "Projects and sharing").
 *
 * - `projects`: a project, its owner, and `deleting_at`: set by `DELETE /api/projects/:id` in one
 *   statement (the project vanishes for everyone at once); the project sweeper then removes its images
 *   in bounded batches and finally the row (see ProjectSweeper), resuming after a crash.
 * - `project_members`: one row per member (the owner included, role `owner`); `user_id` NULL for a
 *   pending invitation, activated by the trigger below when somebody registers with that address.
 * - `images.project_id`: NULL for a personal image; every image that existed before stays personal.
 * - `spheroseg_enqueue` gains the caller's editable projects: an image is the caller's to queue when
 *   it is their personal image or it lies in one of those projects; its rows also carry the image's
 *   project (events of a task in a project carry `projectId`).
 */
export class Projects1765100000000 implements MigrationInterface {
  name = 'Projects1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE projects (
        id          SERIAL PRIMARY KEY,
        name        VARCHAR(200) NOT NULL,
        description TEXT         NOT NULL DEFAULT '',
        owner_id    INTEGER      NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        deleting_at TIMESTAMPTZ,
        created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
        updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX idx_projects_deleting ON projects (deleting_at) WHERE deleting_at IS NOT NULL`,
    );
    await q.query(`
      CREATE TABLE project_members (
        id         SERIAL PRIMARY KEY,
        project_id INTEGER      NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_id    INTEGER      REFERENCES users(id) ON DELETE CASCADE,
        email      VARCHAR(254) NOT NULL,
        role       VARCHAR(8)   NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
        created_at TIMESTAMPTZ  NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE UNIQUE INDEX uq_project_members_email ON project_members (project_id, lower(email))`,
    );
    await q.query(
      `CREATE INDEX idx_project_members_user ON project_members (user_id) WHERE user_id IS NOT NULL`,
    );
    await q.query(
      `CREATE INDEX idx_project_members_pending ON project_members (lower(email)) WHERE user_id IS NULL`,
    );

    // Existing images stay personal (NULL). A project removed with images still in it (its owner's
    // account deleted) leaves them as personal images of their uploaders.
    await q.query(
      `ALTER TABLE images ADD COLUMN project_id INTEGER REFERENCES projects(id) ON DELETE SET NULL`,
    );
    await q.query(
      `CREATE INDEX idx_images_project_created ON images (project_id, created_at DESC, id DESC) WHERE project_id IS NOT NULL`,
    );
    await q.query(`DROP INDEX IF EXISTS idx_images_user_created`);
    await q.query(
      `CREATE INDEX idx_images_user_created ON images (user_id, created_at DESC, id DESC) WHERE project_id IS NULL`,
    );
    await q.query(`CREATE INDEX idx_images_user_any ON images (user_id)`);

    // A pending invitation becomes active when an account with its address is created.
    await q.query(`
      CREATE OR REPLACE FUNCTION spheroseg_activate_invitations() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE project_members SET user_id = NEW.id WHERE user_id IS NULL AND lower(email) = lower(NEW.email);
        RETURN NEW;
      END;
      $$`);
    await q.query(`
      CREATE TRIGGER trg_users_activate_invitations AFTER INSERT ON users
        FOR EACH ROW EXECUTE FUNCTION spheroseg_activate_invitations()`);

    await q.query(
      'DROP FUNCTION IF EXISTS spheroseg_enqueue(integer, integer[], integer[], uuid[], smallint[], integer)',
    );
    await q.query(enqueueFunction(true));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      'DROP FUNCTION IF EXISTS spheroseg_enqueue(integer, integer[], integer[], integer[], uuid[], smallint[], integer)',
    );
    await q.query(enqueueFunction(false));
    await q.query('DROP TRIGGER IF EXISTS trg_users_activate_invitations ON users');
    await q.query('DROP FUNCTION IF EXISTS spheroseg_activate_invitations()');
    await q.query(`DROP INDEX IF EXISTS idx_images_user_any`);
    await q.query(`DROP INDEX IF EXISTS idx_images_user_created`);
    await q.query(`DROP INDEX IF EXISTS idx_images_project_created`);
    await q.query(`ALTER TABLE images DROP COLUMN IF EXISTS project_id`);
    await q.query(`CREATE INDEX idx_images_user_created ON images (user_id, created_at DESC, id DESC)`);
    await q.query(`DROP TABLE IF EXISTS project_members`);
    await q.query(`DROP TABLE IF EXISTS projects`);
  }
}

/**
 * `spheroseg_enqueue` (see migration EnqueueFunction for the algorithm). With `projects`, the caller's
 * editable project ids are a parameter, an image may be the caller's personal image or in one of
 * them, and every row carries the image's project (`o_project`). Without, the previous definition.
 */
export function enqueueFunction(projects: boolean): string {
  const params = projects
    ? 'p_user integer, p_projects integer[], p_req integer[], p_image integer[], p_task uuid[], p_prio smallint[], p_max integer'
    : 'p_user integer, p_req integer[], p_image integer[], p_task uuid[], p_prio smallint[], p_max integer';
  const mayQueue = projects
    ? '((i.project_id IS NULL AND i.user_id = p_user) OR i.project_id = ANY(p_projects))'
    : 'i.user_id = p_user';
  const projectCol = projects ? ', o_project integer' : '';
  const nullProject = projects ? ', NULL::integer' : '';
  const project = projects ? ', (SELECT i.project_id FROM images i WHERE i.id = q.image_id)' : '';
  return `
      CREATE OR REPLACE FUNCTION spheroseg_enqueue(${params})
      RETURNS TABLE (
        o_req integer, o_outcome text, o_created boolean, o_pending integer,
        task_id uuid, job_id varchar, image_id integer, user_id integer, status varchar, priority smallint,
        progress smallint, attempts integer, error_message text, dead_lettered boolean, enqueued_at timestamptz,
        processing_started_at timestamptz, processing_completed_at timestamptz, created_at timestamptz,
        updated_at timestamptz${projectCol})
      LANGUAGE plpgsql AS $$
      #variable_conflict use_column
      DECLARE
        v_pending integer;
        v_req integer;
        v_need integer;
      BEGIN
        PERFORM pg_advisory_xact_lock(727274002, p_user);
        SELECT count(*)::int INTO v_pending FROM (
          SELECT 1 FROM queue_jobs q WHERE q.user_id = p_user AND q.status IN ('queued', 'processing') LIMIT p_max + 1) s;
        FOR v_req IN SELECT DISTINCT r FROM unnest(p_req) AS r ORDER BY r LOOP
          IF EXISTS (SELECT 1 FROM unnest(p_req, p_image) AS x(r, img)
                      WHERE x.r = v_req AND NOT EXISTS (SELECT 1 FROM images i WHERE i.id = x.img AND ${mayQueue})) THEN
            RETURN QUERY SELECT v_req, 'missing'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz${nullProject};
            CONTINUE;
          END IF;
          SELECT count(*)::int INTO v_need FROM unnest(p_req, p_image) AS x(r, img)
           WHERE x.r = v_req AND NOT EXISTS (
             SELECT 1 FROM queue_jobs q WHERE q.image_id = x.img AND q.status IN ('queued', 'processing'));
          IF v_need > 0 AND v_pending + v_need > p_max THEN
            RETURN QUERY SELECT v_req, 'limit'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz${nullProject};
            CONTINUE;
          END IF;
          IF v_need > 0 THEN
            WITH t AS (
              INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
              SELECT x.tid, x.tid::text, x.img, p_user, 'queued', x.prio
                FROM unnest(p_req, p_image, p_task, p_prio) AS x(r, img, tid, prio)
               WHERE x.r = v_req AND NOT EXISTS (
                 SELECT 1 FROM queue_jobs q WHERE q.image_id = x.img AND q.status IN ('queued', 'processing'))
              RETURNING image_id)
            UPDATE images SET segmentation_status = 'queued', updated_at = now() FROM t WHERE images.id = t.image_id;
            v_pending := v_pending + v_need;
          END IF;
          RETURN QUERY SELECT v_req, 'ok'::text, q.task_id = ANY(p_task), v_pending, q.task_id, q.job_id, q.image_id,
              q.user_id, q.status, q.priority, q.progress, q.attempts, q.error_message, q.dead_lettered, q.enqueued_at,
              q.processing_started_at, q.processing_completed_at, q.created_at, q.updated_at${project}
            FROM unnest(p_req, p_image) AS x(r, img)
            JOIN queue_jobs q ON q.image_id = x.img AND q.status IN ('queued', 'processing')
           WHERE x.r = v_req;
        END LOOP;
      END;
      $$`;
}
