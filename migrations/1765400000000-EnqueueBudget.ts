import { MigrationInterface, QueryRunner } from 'typeorm';
import { enqueueFunction } from './1765100000000-Projects';

/**
 * `enqueue_budget`: per user, an upper bound of their open (queued + processing) tasks, so that an
 * enqueue checks MAX_PENDING_TASKS_PER_USER without counting the user's open tasks each time (that
 * count grew with the backlog: ≈ 1.5 ms of PostgreSQL per request at 7 000 open tasks, more than the
 * rest of the enqueue).
 *
 * - Only `spheroseg_enqueue` writes it, under the user's advisory lock: it reads the bound, adds what it
 *   inserts, and counts exactly only when the bound would refuse the request (or there is no bound),
 *   then stores the exact figure. Tasks that finish never touch it (no hot row for the workers): the
 *   bound only drifts up, and a drift that reaches the limit costs one exact count, as before.
 * - Anything else that opens a task (an admin's dead-letter retry, a row inserted by other SQL) drops the
 *   user's bound (triggers below), so the next enqueue counts exactly. With a stored bound this holds
 *   against concurrency too (the enqueue locks the row, the trigger's DELETE waits). One race is left:
 *   a task re-opened and committed while an enqueue of a user *without* a stored bound is counting can
 *   be missed by that count, and the bound it stores is then one low until the next exact count. Only
 *   the admin's dead-letter retry opens tasks outside an enqueue, and it ignores the limit anyway.
 * - A user without a row has no bound yet (every user, right after this migration).
 */
/** Drops `spheroseg_enqueue` with the signature it has since migration Projects (its result type changes here and in EnqueuePath). */
export const DROP_ENQUEUE =
  'DROP FUNCTION IF EXISTS spheroseg_enqueue(integer, integer[], integer[], integer[], uuid[], smallint[], integer)';

export class EnqueueBudget1765400000000 implements MigrationInterface {
  name = 'EnqueueBudget1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE enqueue_budget (
        user_id     INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        open_upper  INTEGER NOT NULL
      )`);
    await q.query(`
      CREATE OR REPLACE FUNCTION spheroseg_forget_budget_row() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM enqueue_budget WHERE user_id = NEW.user_id;
        RETURN NULL;
      END;
      $$`);
    await q.query(`
      CREATE TRIGGER trg_queue_jobs_reopen_budget AFTER UPDATE OF status ON queue_jobs
        FOR EACH ROW
        WHEN (OLD.status NOT IN ('queued', 'processing') AND NEW.status IN ('queued', 'processing'))
        EXECUTE FUNCTION spheroseg_forget_budget_row()`);
    // Inserts: once per statement (a batch enqueue inserts up to 500 rows). spheroseg_enqueue's own
    // insert drops the bound too, and the function then stores the new one.
    await q.query(`
      CREATE OR REPLACE FUNCTION spheroseg_forget_budget_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM enqueue_budget b
         WHERE b.user_id IN (SELECT n.user_id FROM inserted n WHERE n.status IN ('queued', 'processing'));
        RETURN NULL;
      END;
      $$`);
    await q.query(`
      CREATE TRIGGER trg_queue_jobs_insert_budget AFTER INSERT ON queue_jobs
        REFERENCING NEW TABLE AS inserted
        FOR EACH STATEMENT EXECUTE FUNCTION spheroseg_forget_budget_insert()`);
    await q.query(DROP_ENQUEUE);
    await q.query(enqueueWithBudget(false));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(DROP_ENQUEUE);
    await q.query(enqueueFunction(true));
    await q.query('DROP TRIGGER IF EXISTS trg_queue_jobs_insert_budget ON queue_jobs');
    await q.query('DROP TRIGGER IF EXISTS trg_queue_jobs_reopen_budget ON queue_jobs');
    await q.query('DROP FUNCTION IF EXISTS spheroseg_forget_budget_insert()');
    await q.query('DROP FUNCTION IF EXISTS spheroseg_forget_budget_row()');
    await q.query('DROP TABLE IF EXISTS enqueue_budget');
  }
}

/** An image's open task, as the migrations before EnqueueProbe check it. */
const OPEN_TASK_ANTI_JOIN = `NOT EXISTS (
             SELECT 1 FROM queue_jobs q WHERE q.image_id = x.img AND q.status IN ('queued', 'processing'))`;

/**
 * The same check as one index probe per image, whatever the statistics say. PostgreSQL turns the plain
 * NOT EXISTS into an anti-join, and PL/pgSQL caches the plan of a function's statement per connection:
 * planned while `queue_jobs` held few open tasks, the anti-join scanned every open task (the whole
 * partial index `uq_queue_jobs_open_image`) for each enqueued image, and kept doing so as the backlog
 * grew, until an ANALYZE replaced the plan (`bench/enqueue-plan`: 7.5–8.9 ms per enqueue at 25 000 open
 * tasks, against 1.1–2.0 ms with this check). `OFFSET 0` keeps the subquery from being turned into a
 * join: it stays a subplan run per image, an index lookup by that image. Its price: on a connection
 * whose anti-join was planned at the table's real size, about 0.25 ms more PostgreSQL CPU per enqueue.
 */
const OPEN_TASK_PROBE = `NOT EXISTS (
             SELECT 1 FROM queue_jobs q WHERE q.image_id = x.img AND q.status IN ('queued', 'processing') OFFSET 0)`;

/**
 * `spheroseg_enqueue` as in migration Projects (see EnqueueFunction for the algorithm), with the pending
 * figure taken from `enqueue_budget` when it allows the request. `o_pending` is exact whenever the
 * outcome is `limit` (the only outcome that reports it). `withPath` (migration EnqueuePath): each task row
 * also carries its image's storage key, `o_path` (the job payload's hint); without it, this migration's text.
 * `probe` (migration EnqueueProbe): the check for an open task of each image is a correlated subquery
 * (see OPEN_TASK_PROBE); without it, the anti-join of the earlier migrations.
 */
export const enqueueWithBudget = (withPath: boolean, probe = false) => {
  const open = probe ? OPEN_TASK_PROBE : OPEN_TASK_ANTI_JOIN;
  return `
      CREATE OR REPLACE FUNCTION spheroseg_enqueue(p_user integer, p_projects integer[], p_req integer[], p_image integer[], p_task uuid[], p_prio smallint[], p_max integer)
      RETURNS TABLE (
        o_req integer, o_outcome text, o_created boolean, o_pending integer,
        task_id uuid, job_id varchar, image_id integer, user_id integer, status varchar, priority smallint,
        progress smallint, attempts integer, error_message text, dead_lettered boolean, enqueued_at timestamptz,
        processing_started_at timestamptz, processing_completed_at timestamptz, created_at timestamptz,
        updated_at timestamptz, o_project integer${withPath ? ', o_path varchar' : ''})
      LANGUAGE plpgsql AS $$
      #variable_conflict use_column
      DECLARE
        v_pending integer;
        v_exact boolean;
        v_store boolean := false;
        v_req integer;
        v_need integer;
      BEGIN
        PERFORM pg_advisory_xact_lock(727274002, p_user);
        -- FOR UPDATE: a concurrent re-open waits to drop the bound until this enqueue has stored its own.
        SELECT b.open_upper INTO v_pending FROM enqueue_budget b WHERE b.user_id = p_user FOR UPDATE;
        v_exact := v_pending IS NULL;
        IF v_exact THEN
          SELECT count(*)::int INTO v_pending FROM (
            SELECT 1 FROM queue_jobs q WHERE q.user_id = p_user AND q.status IN ('queued', 'processing') LIMIT p_max + 1) s;
          v_store := true;
        END IF;
        FOR v_req IN SELECT DISTINCT r FROM unnest(p_req) AS r ORDER BY r LOOP
          IF EXISTS (SELECT 1 FROM unnest(p_req, p_image) AS x(r, img)
                      WHERE x.r = v_req AND NOT EXISTS (SELECT 1 FROM images i WHERE i.id = x.img AND ((i.project_id IS NULL AND i.user_id = p_user) OR i.project_id = ANY(p_projects)))) THEN
            RETURN QUERY SELECT v_req, 'missing'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::integer${withPath ? ', NULL::varchar' : ''};
            CONTINUE;
          END IF;
          SELECT count(*)::int INTO v_need FROM unnest(p_req, p_image) AS x(r, img)
           WHERE x.r = v_req AND ${open};
          IF v_need > 0 AND v_pending + v_need > p_max AND NOT v_exact THEN
            -- The bound would refuse: count exactly (the bound may have drifted above the truth).
            SELECT count(*)::int INTO v_pending FROM (
              SELECT 1 FROM queue_jobs q WHERE q.user_id = p_user AND q.status IN ('queued', 'processing') LIMIT p_max + 1) s;
            v_exact := true;
            v_store := true;
          END IF;
          IF v_need > 0 AND v_pending + v_need > p_max THEN
            RETURN QUERY SELECT v_req, 'limit'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::integer${withPath ? ', NULL::varchar' : ''};
            CONTINUE;
          END IF;
          IF v_need > 0 THEN
            WITH t AS (
              INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
              SELECT x.tid, x.tid::text, x.img, p_user, 'queued', x.prio
                FROM unnest(p_req, p_image, p_task, p_prio) AS x(r, img, tid, prio)
               WHERE x.r = v_req AND ${open}
              RETURNING image_id)
            UPDATE images SET segmentation_status = 'queued', updated_at = now() FROM t WHERE images.id = t.image_id;
            v_pending := v_pending + v_need;
            v_store := true;
          END IF;
          RETURN QUERY SELECT v_req, 'ok'::text, q.task_id = ANY(p_task), v_pending, q.task_id, q.job_id, q.image_id,
              q.user_id, q.status, q.priority, q.progress, q.attempts, q.error_message, q.dead_lettered, q.enqueued_at,
              q.processing_started_at, q.processing_completed_at, q.created_at, q.updated_at,
              ${withPath ? 'i.project_id, i.storage_path' : '(SELECT i.project_id FROM images i WHERE i.id = q.image_id)'}
            FROM unnest(p_req, p_image) AS x(r, img)
            JOIN queue_jobs q ON q.image_id = x.img AND q.status IN ('queued', 'processing')${withPath ? `
            JOIN images i ON i.id = q.image_id` : ''}
           WHERE x.r = v_req;
        END LOOP;
        IF v_store THEN
          IF v_pending <= p_max THEN
            -- (No row for an id that names no user: such a call only ever answers 'missing'.)
            INSERT INTO enqueue_budget (user_id, open_upper)
              SELECT p_user, v_pending WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = p_user)
              ON CONFLICT (user_id) DO UPDATE SET open_upper = EXCLUDED.open_upper;
          ELSE
            -- A count stopped at p_max + 1 is not a bound.
            DELETE FROM enqueue_budget WHERE user_id = p_user;
          END IF;
        END IF;
      END;
      $$`;
};
