import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Enqueue in one round trip, for several requests of one user at once (the api coalesces a user's
 * concurrent enqueues into one call, see EnqueueBatcher). Under the user's advisory lock — so that
 * MAX_PENDING_TASKS_PER_USER stays exact across processes — each request, in order:
 *  - `missing`: one of its images does not exist or is not the user's (nothing inserted);
 *  - `limit`: its new tasks would pass `p_max` open tasks (nothing inserted; `o_pending` = open now);
 *  - `ok`: a row per image with the image's open task, `o_created` when inserted by this call (the
 *    image's `segmentation_status` becomes `queued` in the same statement).
 * Each statement of a plpgsql function takes a fresh snapshot, so the count after the lock sees every
 * task committed by the lock's previous holder. One open task per image stays guarded by the partial
 * unique index `uq_queue_jobs_open_image`.
 */
export class EnqueueFunction1764390500000 implements MigrationInterface {
  name = 'EnqueueFunction1764390500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION spheroseg_enqueue(
        p_user integer, p_req integer[], p_image integer[], p_task uuid[], p_prio smallint[], p_max integer)
      RETURNS TABLE (
        o_req integer, o_outcome text, o_created boolean, o_pending integer,
        task_id uuid, job_id varchar, image_id integer, user_id integer, status varchar, priority smallint,
        progress smallint, attempts integer, error_message text, dead_lettered boolean, enqueued_at timestamptz,
        processing_started_at timestamptz, processing_completed_at timestamptz, created_at timestamptz,
        updated_at timestamptz)
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
                      WHERE x.r = v_req AND NOT EXISTS (SELECT 1 FROM images i WHERE i.id = x.img AND i.user_id = p_user)) THEN
            RETURN QUERY SELECT v_req, 'missing'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
            CONTINUE;
          END IF;
          SELECT count(*)::int INTO v_need FROM unnest(p_req, p_image) AS x(r, img)
           WHERE x.r = v_req AND NOT EXISTS (
             SELECT 1 FROM queue_jobs q WHERE q.image_id = x.img AND q.status IN ('queued', 'processing'));
          IF v_need > 0 AND v_pending + v_need > p_max THEN
            RETURN QUERY SELECT v_req, 'limit'::text, FALSE, v_pending, NULL::uuid, NULL::varchar, NULL::integer,
              NULL::integer, NULL::varchar, NULL::smallint, NULL::smallint, NULL::integer, NULL::text, NULL::boolean,
              NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz;
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
              q.processing_started_at, q.processing_completed_at, q.created_at, q.updated_at
            FROM unnest(p_req, p_image) AS x(r, img)
            JOIN queue_jobs q ON q.image_id = x.img AND q.status IN ('queued', 'processing')
           WHERE x.r = v_req;
        END LOOP;
      END;
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION IF EXISTS spheroseg_enqueue(integer, integer[], integer[], uuid[], smallint[], integer)');
  }
}
