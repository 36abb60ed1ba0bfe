import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Completing a task is the hottest write of the pipeline: one function call (one round trip) marks
 * the task completed if it is still open, marks its image, retires the image's previous current
 * result and inserts the new one — atomically, in that order (the partial unique index on the
 * current result needs the old one retired first). Returns the completed task row, or nothing when
 * the task was no longer open (cancelled, or completed by an earlier run of the same job).
 */
export class CompleteTaskFunction1764380000000 implements MigrationInterface {
  name = 'CompleteTaskFunction1764380000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION spheroseg_complete_task(
        p_task_id uuid, p_width integer, p_height integer, p_processing_ms integer,
        p_polygon_count integer, p_polygons jsonb)
      RETURNS SETOF queue_jobs
      LANGUAGE plpgsql AS $$
      DECLARE
        t queue_jobs;
      BEGIN
        UPDATE queue_jobs SET status = 'completed', progress = 100, error_message = NULL, attempts = attempts + 1,
               processing_started_at = COALESCE(processing_started_at, now()), processing_completed_at = now(),
               updated_at = now()
         WHERE task_id = p_task_id AND status IN ('queued', 'processing')
        RETURNING * INTO t;
        IF NOT FOUND THEN
          RETURN;
        END IF;
        UPDATE images SET segmentation_status = 'completed', updated_at = now() WHERE id = t.image_id;
        UPDATE segmentation_results SET is_current = FALSE WHERE image_id = t.image_id AND is_current;
        INSERT INTO segmentation_results
          (task_id, image_id, is_current, image_width, image_height, processing_time_ms, polygon_count, polygons)
        VALUES (p_task_id, t.image_id, TRUE, p_width, p_height, p_processing_ms, p_polygon_count, p_polygons);
        RETURN NEXT t;
      END;
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION IF EXISTS spheroseg_complete_task(uuid, integer, integer, integer, integer, jsonb)');
  }
}
