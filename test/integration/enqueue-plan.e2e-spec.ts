import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { ALL_MIGRATIONS } from '../../migrations';
import { runMigrationsLocked } from '../../src/database/run-migrations';
import { ownDatabase } from '../support/own-database';

/**
 * `spheroseg_enqueue` on a connection that has used it since the table was small: PL/pgSQL keeps the
 * plans it made then. The check for an open task of the image must still be one index lookup when the
 * backlog has grown, not a scan of every open task (`bench/enqueue-plan`: 7.5–8.9 ms instead of
 * 1.1–2.0 ms per enqueue at 25 000 open tasks). The plans are read with auto_explain (a PostgreSQL
 * contrib module), sent to this connection as notices.
 */
describe('spheroseg_enqueue: the open-task check stays an index lookup as the backlog grows', () => {
  const own = ownDatabase('enqueue_plan');
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
    const ds = new DataSource({
      type: 'postgres',
      url,
      migrations: ALL_MIGRATIONS,
      migrationsTableName: 'migrations',
    });
    await ds.initialize();
    try {
      await runMigrationsLocked(ds);
    } finally {
      await ds.destroy();
    }
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

  it('plans a lookup of the image by its id, not a scan of the open tasks', async () => {
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

    const plans: string[] = [];
    const onNotice = (n: { message?: string }) => plans.push(n.message ?? '');
    c.on('notice', onNotice);
    await c.query(`LOAD 'auto_explain'`);
    await c.query('SET auto_explain.log_min_duration = 0');
    await c.query('SET auto_explain.log_nested_statements = on');
    await c.query('SET auto_explain.log_level = notice');
    try {
      // An image with an open task answers the existing task; a new image gets one.
      expect(await enqueue(a, aImages[0])).toEqual([{ o_outcome: 'ok', o_created: false }]);
      expect(await enqueue(a, aImages[55])).toEqual([{ o_outcome: 'ok', o_created: true }]);
    } finally {
      c.off('notice', onNotice);
      await c.query('SET auto_explain.log_min_duration = -1');
    }

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
});
