import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Results become versions (CONTRACT §3 "Editing a result", §7). Every row of `segmentation_results`
 * is a version of its image: 1, 2, … in the order they were made (existing rows numbered by
 * `created_at`, then id; none removed), the newest the current one (`is_current` kept in step, so
 * every reader of the current result stays as it was). An edit is a row too: `source` 'edit',
 * `edited_by` the person, no task. `polygon_count` becomes every polygon (holes included) and
 * `spheroid_count` the external ones, so the version list never reads the polygons.
 *
 * `polygons` becomes `json` (text kept as written) compressed with lz4 where the server has it: it is
 * only ever written and read whole, and for a large edit (200 000 points, ~5 MB) jsonb's parse on
 * write and re-serialisation on read cost ~10× more than json's check (bench/versions).
 *
 * Both writers number under the image's row lock, in one function call each:
 *  - spheroseg_complete_task (replaced): a task's result becomes the next version;
 *  - spheroseg_new_version: an edit or a restore, only when `p_base` is the current version and the
 *    image has no queued or processing task; otherwise it answers why ('stale' with the current
 *    version, 'task', 'missing', 'no-version') and writes nothing.
 */
export class ResultVersions1765200000000 implements MigrationInterface {
  name = 'ResultVersions1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE segmentation_results
        ADD COLUMN version        INTEGER,
        ADD COLUMN source         VARCHAR(8) NOT NULL DEFAULT 'ml',
        ADD COLUMN edited_by      INTEGER REFERENCES users(id) ON DELETE SET NULL,
        ADD COLUMN spheroid_count INTEGER,
        ALTER COLUMN task_id DROP NOT NULL`);
    await q.query(`
      UPDATE segmentation_results r
         SET version = v.n,
             polygon_count = jsonb_array_length(r.polygons),
             spheroid_count = (SELECT count(*) FROM jsonb_array_elements(r.polygons) p WHERE p->>'type' = 'external')
        FROM (SELECT id, row_number() OVER (PARTITION BY image_id ORDER BY created_at, id) AS n FROM segmentation_results) v
       WHERE v.id = r.id`);
    // The newest version is the current one (it always was: a new result retired the previous one).
    await q.query(`
      UPDATE segmentation_results r SET is_current = (r.version = m.top)
        FROM (SELECT image_id, max(version) AS top FROM segmentation_results GROUP BY image_id) m
       WHERE m.image_id = r.image_id AND r.is_current IS DISTINCT FROM (r.version = m.top)`);
    await q.query(`
      ALTER TABLE segmentation_results
        ALTER COLUMN version SET NOT NULL,
        ALTER COLUMN spheroid_count SET NOT NULL,
        ADD CONSTRAINT ck_segmentation_results_source CHECK (source IN ('ml', 'edit')),
        ADD CONSTRAINT ck_segmentation_results_task CHECK ((source = 'ml') = (task_id IS NOT NULL)),
        ADD CONSTRAINT uq_segmentation_results_version UNIQUE (image_id, version)`);

    await q.query('ALTER TABLE segmentation_results ALTER COLUMN polygons TYPE json USING polygons::json');
    const [{ lz4 }] = (await q.query(
      `SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)) AS lz4`,
    )) as Array<{ lz4: boolean }>;
    if (lz4) await q.query('ALTER TABLE segmentation_results ALTER COLUMN polygons SET COMPRESSION lz4');

    await q.query(
      'DROP FUNCTION IF EXISTS spheroseg_complete_task(uuid, integer, integer, integer, integer, jsonb)',
    );
    await q.query(`
      CREATE FUNCTION spheroseg_complete_task(
        p_task_id uuid, p_width integer, p_height integer, p_processing_ms integer,
        p_spheroid_count integer, p_polygons json)
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
        -- Takes the image's row lock: versions of one image are numbered one writer at a time.
        UPDATE images SET segmentation_status = 'completed', updated_at = now() WHERE id = t.image_id;
        UPDATE segmentation_results SET is_current = FALSE WHERE image_id = t.image_id AND is_current;
        INSERT INTO segmentation_results
          (task_id, image_id, version, source, is_current, image_width, image_height, processing_time_ms,
           polygon_count, spheroid_count, polygons)
        VALUES (p_task_id, t.image_id,
                (SELECT COALESCE(max(version), 0) + 1 FROM segmentation_results WHERE image_id = t.image_id),
                'ml', TRUE, p_width, p_height, p_processing_ms,
                json_array_length(p_polygons), p_spheroid_count, p_polygons);
        RETURN NEXT t;
      END;
      $$`);

    await q.query(`
      CREATE FUNCTION spheroseg_new_version(
        p_image integer, p_base integer, p_user integer, p_from_version integer,
        p_width integer, p_height integer, p_spheroid_count integer, p_polygons json)
      RETURNS TABLE (o_outcome text, o_current integer, o_id integer, o_version integer, o_created_at timestamptz)
      LANGUAGE plpgsql AS $$
      DECLARE
        v_current integer;
        v_from segmentation_results;
        v_row segmentation_results;
      BEGIN
        PERFORM 1 FROM images WHERE id = p_image FOR UPDATE;
        IF NOT FOUND THEN
          RETURN QUERY SELECT 'missing'::text, NULL::integer, NULL::integer, NULL::integer, NULL::timestamptz;
          RETURN;
        END IF;
        SELECT COALESCE(max(version), 0) INTO v_current FROM segmentation_results WHERE image_id = p_image;
        IF EXISTS (SELECT 1 FROM queue_jobs WHERE image_id = p_image AND status IN ('queued', 'processing')) THEN
          RETURN QUERY SELECT 'task'::text, v_current, NULL::integer, NULL::integer, NULL::timestamptz;
          RETURN;
        END IF;
        IF v_current <> p_base THEN
          RETURN QUERY SELECT 'stale'::text, v_current, NULL::integer, NULL::integer, NULL::timestamptz;
          RETURN;
        END IF;
        IF p_from_version IS NOT NULL THEN
          SELECT * INTO v_from FROM segmentation_results WHERE image_id = p_image AND version = p_from_version;
          IF NOT FOUND THEN
            RETURN QUERY SELECT 'no-version'::text, v_current, NULL::integer, NULL::integer, NULL::timestamptz;
            RETURN;
          END IF;
        END IF;
        UPDATE segmentation_results SET is_current = FALSE WHERE image_id = p_image AND is_current;
        IF p_from_version IS NULL THEN
          INSERT INTO segmentation_results
            (task_id, image_id, version, source, edited_by, is_current, image_width, image_height, processing_time_ms,
             polygon_count, spheroid_count, polygons)
          VALUES (NULL, p_image, v_current + 1, 'edit', p_user, TRUE, p_width, p_height, 0,
                  json_array_length(p_polygons), p_spheroid_count, p_polygons)
          RETURNING * INTO v_row;
        ELSE
          INSERT INTO segmentation_results
            (task_id, image_id, version, source, edited_by, is_current, image_width, image_height, processing_time_ms,
             polygon_count, spheroid_count, polygons)
          VALUES (NULL, p_image, v_current + 1, 'edit', p_user, TRUE, v_from.image_width, v_from.image_height, 0,
                  v_from.polygon_count, v_from.spheroid_count, v_from.polygons)
          RETURNING * INTO v_row;
        END IF;
        UPDATE images SET updated_at = now() WHERE id = p_image;
        RETURN QUERY SELECT 'ok'::text, v_row.version, v_row.id, v_row.version, v_row.created_at;
      END;
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      'DROP FUNCTION IF EXISTS spheroseg_new_version(integer, integer, integer, integer, integer, integer, integer, json)',
    );
    await q.query(
      'DROP FUNCTION IF EXISTS spheroseg_complete_task(uuid, integer, integer, integer, integer, json)',
    );
    await q.query('ALTER TABLE segmentation_results ALTER COLUMN polygons SET COMPRESSION default');
    await q.query('ALTER TABLE segmentation_results ALTER COLUMN polygons TYPE jsonb USING polygons::jsonb');
    // Edits have no task and the old schema cannot hold them: only results of tasks go back.
    await q.query(`DELETE FROM segmentation_results WHERE task_id IS NULL`);
    await q.query(`
      UPDATE segmentation_results r SET is_current = (r.version = m.top)
        FROM (SELECT image_id, max(version) AS top FROM segmentation_results GROUP BY image_id) m
       WHERE m.image_id = r.image_id`);
    await q.query(`UPDATE segmentation_results SET polygon_count = spheroid_count`);
    await q.query(`
      ALTER TABLE segmentation_results
        DROP CONSTRAINT uq_segmentation_results_version,
        DROP CONSTRAINT ck_segmentation_results_task,
        DROP CONSTRAINT ck_segmentation_results_source,
        DROP COLUMN spheroid_count,
        DROP COLUMN edited_by,
        DROP COLUMN source,
        DROP COLUMN version,
        ALTER COLUMN task_id SET NOT NULL`);
    await q.query(`
      CREATE FUNCTION spheroseg_complete_task(
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
}
