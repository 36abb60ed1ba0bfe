import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { applyMigrations, ownDatabase } from '../support/own-database';

/**
 * PL/pgSQL keeps the plans a connection made when it first ran a function, possibly on small tables.
 *
 * `spheroseg_enqueue` on a connection that has used it since the table was small: PL/pgSQL keeps the
 * plans it made then. The check for an open task of the image must still be one index lookup when the
 * backlog has grown, not a scan of every open task (`bench/enqueue-plan`: 7.5–8.9 ms instead of
 * 1.1–2.0 ms per enqueue at 25 000 open tasks). The plans are read with auto_explain (a PostgreSQL
 * contrib module), sent to this connection as notices.
 */
describe('plans made on small tables stay index lookups as the tables grow', () => {
  const own = ownDatabase('plan_cache');
  let url: string;
  let c: Client;
  let other: Client;

  const enqueue = async (user: number, image: number) =>
    (
      await c.query<{ o_outcome: string; o_created: boolean }>(
        'SELECT o_outcome, o_created FROM spheroseg_enqueue($1, $2::int[], $3::int[], $4::int[], $5::uuid[], $6::smallint[], $7)',
        [user, [], [1], [image], [randomUUID()], [1], 1_000_000],
      )
    ).rows;

  beforeAll(async () => {
    await own.drop();
    url = await own.create();
    await applyMigrations(url);
    c = new Client({ connectionString: url });
    other = new Client({ connectionString: url });
    await c.connect();
    await other.connect();
  });
  afterAll(async () => {
    await c?.end();
    await other?.end();
    await own.drop();
  });

  /** Runs `fn` with auto_explain on connection `on`; answers the plans of every statement it ran, nested ones included. */
  const explained = async (on: Client, fn: () => Promise<void>): Promise<string[]> => {
    const plans: string[] = [];
    const onNotice = (n: { message?: string }) => plans.push(n.message ?? '');
    on.on('notice', onNotice);
    await on.query(`LOAD 'auto_explain'`);
    await on.query('SET auto_explain.log_min_duration = 0');
    await on.query('SET auto_explain.log_nested_statements = on');
    await on.query('SET auto_explain.log_level = notice');
    try {
      await fn();
    } finally {
      on.off('notice', onNotice);
      await on.query('SET auto_explain.log_min_duration = -1');
    }
    return plans;
  };

  it('spheroseg_enqueue: plans a lookup of the image by its id, not a scan of the open tasks', async () => {
    const users = (
      await other.query<{ id: number }>(
        `INSERT INTO users (email, password_hash) SELECT 'plan' || g || '@example.com', 'x' FROM generate_series(1, 2) g RETURNING id`,
      )
    ).rows.map((r) => r.id);
    const [a, b] = users;
    const images = async (user: number, n: number) =>
      (
        await other.query<{ id: number }>(
          `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
           SELECT $1::int, 'p.png', 'plan/' || $1::int || '/' || g, 'image/png', 100, 64, 48 FROM generate_series(1, $2::int) g
           RETURNING id`,
          [user, n],
        )
      ).rows.map((r) => r.id);
    const aImages = await images(a, 60);
    const bImages = await images(b, 25_000);

    // The connection uses the function while the table holds a few open tasks (PL/pgSQL settles on a
    // cached plan after five calls).
    for (const img of aImages.slice(0, 50))
      expect(await enqueue(a, img)).toEqual([{ o_outcome: 'ok', o_created: true }]);

    // The backlog grows (another user's batch), with no ANALYZE in between.
    await other.query(
      `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
       SELECT t, t::text, img, $1::int, 'queued', 1 FROM (SELECT gen_random_uuid() AS t, unnest($2::int[]) AS img) s`,
      [b, bImages],
    );

    const plans = await explained(c, async () => {
      // An image with an open task answers the existing task; a new image gets one.
      expect(await enqueue(a, aImages[0])).toEqual([{ o_outcome: 'ok', o_created: false }]);
      expect(await enqueue(a, aImages[55])).toEqual([{ o_outcome: 'ok', o_created: true }]);
    });

    // Every statement of the function that checks an image for an open task (the count of what is
    // needed, and the insert), in both calls.
    const checks = plans.filter((p) => /WHERE q\.image_id = x\.img AND q\.status IN/.test(p));
    expect(checks.length).toBeGreaterThanOrEqual(3);
    for (const plan of checks) {
      // (uq_queue_jobs_open_image or idx_queue_jobs_image: either finds the image's rows directly)
      expect(plan).toMatch(
        /Index (Only )?Scan using \w+ on queue_jobs q\b[^\n]*\n\s+Index Cond: \(image_id = x\.img\)/,
      );
      expect(plan).not.toMatch(/(Seq|Bitmap Heap) Scan on queue_jobs/);
    }
  });

  it('spheroseg_worker_writes: a worker that first wrote while there were few results still finds them by index', async () => {
    const w = new Client({ connectionString: url }); // a worker's connection, new on a young database
    await w.connect();
    try {
      const [{ id: user }] = (
        await other.query<{ id: number }>(`INSERT INTO users (email, password_hash) VALUES ('writes@example.com', 'x') RETURNING id`)
      ).rows;
      const tasksOf = async (n: number, status: string) =>
        (
          await other.query<{ task_id: string; image_id: number }>(
            `WITH i AS (INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
                        SELECT $1::int, 'w.png', 'writes/' || gen_random_uuid(), 'image/png', 100, 64, 48 FROM generate_series(1, $2::int)
                        RETURNING id)
             INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
             SELECT t, t::text, i.id, $1::int, $3, 1 FROM (SELECT gen_random_uuid() AS t, id FROM i) i
             RETURNING task_id, image_id`,
            [user, n, status],
          )
        ).rows;
      const writes = async (claims: string[], completions: string[]) =>
        (
          await w.query<{ batch_ord: string; task_id: string; status: string }>(
            `SELECT w.batch_ord, (w.task).task_id, (w.task).status
               FROM spheroseg_worker_writes($1::uuid[], $2::varchar[], $3::uuid[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[]) w
              ORDER BY w.batch_ord, 2`,
            [claims, ['queued', 'processing'], completions, ...[64, 48, 5, 0].map((v) => completions.map(() => v)), completions.map(() => '[]')],
          )
        ).rows.map((r) => [Number(r.batch_ord), r.task_id, r.status]);
      const sorted = (ids: string[]) => [...ids].sort();

      const addResults = (tasks: Array<{ task_id: string; image_id: number }>) =>
        other.query(
          `INSERT INTO segmentation_results (task_id, image_id, version, source, is_current, image_width, image_height,
                                             processing_time_ms, polygon_count, spheroid_count, polygons)
           SELECT t, i, 1, 'ml', TRUE, 64, 48, 5, 0, 0, '[]' FROM unnest($1::uuid[], $2::int[]) AS x(t, i)`,
          [tasks.map((t) => t.task_id), tasks.map((t) => t.image_id)],
        );
      // A young database: a few results, analyzed (as autovacuum does after the first ones); the
      // worker's first batches make their generic plans now.
      await addResults(await tasksOf(3, 'completed'));
      await other.query('ANALYZE segmentation_results');
      const first = (await tasksOf(6, 'queued')).map((t) => t.task_id);
      expect(await writes(first.slice(0, 3), [])).toEqual(sorted(first.slice(0, 3)).map((id) => [0, id, 'processing']));
      expect(await writes(first.slice(3), first.slice(0, 3))).toEqual([
        ...sorted(first.slice(3)).map((id) => [0, id, 'processing']),
        ...first.slice(0, 3).map((id, k) => [k + 1, id, 'completed']),
      ]);

      // The results grow to 20 000 (other workers), with no ANALYZE in between.
      const done = await tasksOf(20_000, 'completed');
      await addResults(done);
      // Those images are run again: their tasks complete on this connection, and their results become version 2.
      const again: string[] = [];
      for (const t of done.slice(0, 3)) {
        const { rows } = await other.query<{ task_id: string }>(
          `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
           SELECT t, t::text, $1::int, $2::int, 'processing', 1 FROM gen_random_uuid() AS t RETURNING task_id`,
          [t.image_id, user],
        );
        again.push(rows[0].task_id);
      }
      const plans = await explained(w, async () => {
        expect(await writes([], again)).toEqual(again.map((id, k) => [k + 1, id, 'completed']));
      });
      const versions = await other.query<{ version: number; is_current: boolean }>(
        `SELECT version, is_current FROM segmentation_results WHERE image_id = ANY($1::int[]) ORDER BY image_id, version`,
        [done.slice(0, 3).map((t) => t.image_id)],
      );
      expect(versions.rows.map((r) => [r.version, r.is_current])).toEqual([1, 2, 3].flatMap(() => [[1, false], [2, true]]));

      // Every statement of the batch reads the results by image (the current one, the last version).
      const onResults = plans.filter((p) => /Query Text: (UPDATE segmentation_results|INSERT INTO segmentation_results)/.test(p));
      expect(onResults.length).toBe(2);
      for (const plan of plans) expect(plan).not.toMatch(/Seq Scan on (segmentation_results|queue_jobs|images)\b/);
      // (by uq_segmentation_results_current or uq_segmentation_results_version: either finds the image's rows directly)
      expect(onResults[0]).toMatch(/Index Scan (using|on) \w+( on segmentation_results)?[^\n]*\n(\s+Recheck Cond[^\n]*\n\s+->[^\n]*\n)?\s+Index Cond: \(image_id = ANY/);
    } finally {
      await w.end();
    }
  });
});
