import { MigrationInterface, QueryRunner } from 'typeorm';
import { WORKER_WRITES_CLAIMS, WORKER_WRITES_PER_ROW, WORKER_WRITES_SIGNATURE } from './1765600000000-WorkerWrites';

/**
 * `spheroseg_worker_writes` completes a batch's tasks with four statements for the whole batch instead
 * of four per task (issue 24).
 *
 * Its completions called `spheroseg_complete_task` once per task, and each call ran four statements
 * (the task, its image, the image's current result, the new result). In bench/pipeline (ML 50 ms) an
 * on-CPU profile of PostgreSQL with call graphs put about 45 % of its CPU on what such a statement
 * costs whatever its number of rows: PL/pgSQL and SPI (24 %), executor start-up (10 %) and, on every
 * executor start of an INSERT or UPDATE, the table's CHECK constraints read back from their stored text
 * and compiled again (`ExecConstraints` → `stringToNode`: 10 %).
 *
 * Same rules as `spheroseg_complete_task`, each step now for every task of the batch:
 *  1. the open tasks are completed (a conditional UPDATE: its row lock keeps two runs of one job from
 *     both completing it); of two completions of one task in the batch only the first (lowest position)
 *     can, as before;
 *  2. their images are marked completed, which takes their row locks: the versions of one image are
 *     numbered one writer at a time (result edits lock the image row first too);
 *  3. the images' current results stop being current;
 *  4. each task's result is inserted as the image's next version, numbered by a statement that starts
 *     after step 2 holds the locks (READ COMMITTED: each statement of the function sees the commits made
 *     before it started), so an edit committed meanwhile is counted.
 * A batch holds at most one completed task per image (an image has at most one open task:
 * `uq_queue_jobs_open_image`), so the version numbers of one statement cannot collide. A failed batch is
 * still run task by task by the caller (`StatementBatcher`), with `spheroseg_complete_task`.
 *
 * Rows returned are unchanged: `batch_ord` 0 for a claimed task, the 1-based position in `p_ids` for a
 * completed one.
 *
 * `enable_seqscan = off` on the function: every statement in it finds a few rows by key, and its generic
 * plans are made once per connection (`force_generic_plan`), maybe while a table is small. Planned
 * after the first results were analyzed, the set-wide `image_id = ANY(…)` update of the current results
 * became a sequential scan, kept as the table grew until the next ANALYZE (3.6 ms per batch at 20 000
 * results in the test, `test/integration/plan-cache.e2e-spec.ts`; the per-task statements it replaces
 * compared one image id and kept their index). With sequential scans off the plan is an index lookup
 * whatever the statistics said (as EnqueueProbe's `OFFSET 0` does for the enqueue).
 */
export const WORKER_WRITES_SET_BASED = `${WORKER_WRITES_SIGNATURE}
      SET enable_seqscan = off
      AS $$
      DECLARE
        v_ords bigint[];
        v_tasks queue_jobs[];
        v_images integer[];
      BEGIN${WORKER_WRITES_CLAIMS}
        IF cardinality(p_ids) > 0 THEN
          WITH t AS (UPDATE queue_jobs q
                        SET status = 'completed', progress = 100, error_message = NULL, attempts = q.attempts + 1,
                            processing_started_at = COALESCE(q.processing_started_at, now()),
                            processing_completed_at = now(), updated_at = now()
                      WHERE q.task_id = ANY(p_ids) AND q.status IN ('queued', 'processing')
                     RETURNING q)
          SELECT array_agg(o.ord ORDER BY o.ord), array_agg(t.q ORDER BY o.ord), array_agg((t.q).image_id)
            INTO v_ords, v_tasks, v_images
            FROM t CROSS JOIN LATERAL (SELECT array_position(p_ids, (t.q).task_id)::bigint AS ord) o;
          IF v_ords IS NULL THEN
            RETURN;
          END IF;
          UPDATE images SET segmentation_status = 'completed', updated_at = now() WHERE id = ANY(v_images);
          UPDATE segmentation_results SET is_current = FALSE WHERE image_id = ANY(v_images) AND is_current;
          INSERT INTO segmentation_results
            (task_id, image_id, version, source, is_current, image_width, image_height, processing_time_ms,
             polygon_count, spheroid_count, polygons)
          SELECT (j.t).task_id, (j.t).image_id,
                 (SELECT COALESCE(max(s.version), 0) + 1 FROM segmentation_results s WHERE s.image_id = (j.t).image_id),
                 'ml', TRUE, p_widths[j.k], p_heights[j.k], p_ms[j.k], json_array_length(j.p), p_spheroids[j.k], j.p
            FROM generate_subscripts(v_ords, 1) AS g(i)
           CROSS JOIN LATERAL (SELECT v_tasks[g.i] AS t, v_ords[g.i] AS k, p_polygons[v_ords[g.i]]::json AS p) j;
          RETURN QUERY
            SELECT v_ords[g.i], v_tasks[g.i], NULL::varchar, NULL::integer FROM generate_subscripts(v_ords, 1) AS g(i);
        END IF;
      END;
      $$`;

export class WorkerWritesSetBased1765800000000 implements MigrationInterface {
  name = 'WorkerWritesSetBased1765800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(WORKER_WRITES_SET_BASED);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(WORKER_WRITES_PER_ROW);
  }
}
