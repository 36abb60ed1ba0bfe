import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `spheroseg_worker_writes`: a worker's batch of claims and completions (TaskStore.writeMany) in one
 * call, planned once per connection instead of once per call (issue 24).
 *
 * As one client statement (claims as data-modifying CTEs, completions as a LATERAL call of
 * `spheroseg_complete_task`), PostgreSQL planned it on every execution: its `= ANY($1)` array makes
 * each custom plan look cheaper than the generic one, so the plan cache never switched. That was
 * ≈ 0.3 ms of planning per statement, a quarter of PostgreSQL's CPU per task in bench/pipeline. Here
 * the same two queries run as PL/pgSQL statements under `plan_cache_mode = force_generic_plan`, set on
 * this function only: their generic plans are the index lookups on the task ids that the custom plans
 * were, and they are made once per session.
 *
 * Rows: `batch_ord` 0 for a claimed task (with its image's storage path and project), the 1-based
 * position in `p_ids` for a completed one; the task as `queue_jobs` (the caller expands it).
 */
/** The function's signature and its plan cache setting, shared by every version of it. */
export const WORKER_WRITES_SIGNATURE = `
      CREATE OR REPLACE FUNCTION spheroseg_worker_writes(
        p_claims uuid[], p_open varchar[],
        p_ids uuid[], p_widths integer[], p_heights integer[], p_ms integer[], p_spheroids integer[], p_polygons text[])
      RETURNS TABLE (batch_ord bigint, task queue_jobs, storage_path varchar, project_id integer)
      LANGUAGE plpgsql
      SET plan_cache_mode = force_generic_plan`;

/** The claims: one statement for the batch (rows with `batch_ord` 0). */
export const WORKER_WRITES_CLAIMS = `
        IF cardinality(p_claims) > 0 THEN
          RETURN QUERY
            WITH t AS (UPDATE queue_jobs SET updated_at = now(), status = 'processing', progress = 10,
                              processing_started_at = COALESCE(processing_started_at, now())
                        WHERE task_id = ANY(p_claims) AND status = ANY(p_open) RETURNING *),
                 i AS (UPDATE images SET segmentation_status = 'processing', updated_at = now()
                         FROM t WHERE images.id = t.image_id
                       RETURNING images.id, images.storage_path, images.project_id)
            SELECT 0::bigint, t::queue_jobs, i.storage_path, i.project_id FROM t LEFT JOIN i ON i.id = t.image_id;
        END IF;`;

/** The function as this migration made it: one `spheroseg_complete_task` call per completion (migration WorkerWritesSetBased's down restores it). */
export const WORKER_WRITES_PER_ROW = `${WORKER_WRITES_SIGNATURE}
      AS $$
      BEGIN${WORKER_WRITES_CLAIMS}
        IF cardinality(p_ids) > 0 THEN
          RETURN QUERY
            SELECT x.ord, c::queue_jobs, NULL::varchar, NULL::integer
              FROM unnest(p_ids, p_widths, p_heights, p_ms, p_spheroids, p_polygons)
                   WITH ORDINALITY AS x(id, w, h, ms, n, p, ord)
             CROSS JOIN LATERAL spheroseg_complete_task(x.id, x.w, x.h, x.ms, x.n, x.p::json) c;
        END IF;
      END;
      $$`;

export class WorkerWrites1765600000000 implements MigrationInterface {
  name = 'WorkerWrites1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(WORKER_WRITES_PER_ROW);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION IF EXISTS spheroseg_worker_writes(uuid[], varchar[], uuid[], integer[], integer[], integer[], integer[], text[])');
  }
}
