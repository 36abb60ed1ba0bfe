import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { ALL_MIGRATIONS } from '../../../migrations';
import { ResultVersions1765200000000 } from '../../../migrations/1765200000000-ResultVersions';

/**
 * Migration ResultVersions on a database that already has results: the old migrations run, results
 * are inserted the old way, then the new migration runs (CONTRACT §7: results become versions 1, 2, …
 * in the order they were made; none lost).
 */
describe('migration ResultVersions carries existing results over', () => {
  const dbName = `${process.env.TEST_DATABASE_NAME}_migr`;
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `/${dbName}`;
  const admin = () => {
    const u = new URL(process.env.DATABASE_URL!);
    u.pathname = '/postgres';
    return new Client({ connectionString: u.toString() });
  };
  const source = (migrations: unknown[]) =>
    new DataSource({
      type: 'postgres',
      url: url.toString(),
      migrations: migrations as never,
      migrationsTableName: 'migrations',
      logging: false,
    });

  beforeAll(async () => {
    const c = admin();
    await c.connect();
    await c.query(`CREATE DATABASE "${dbName}"`);
    await c.end();
  });
  afterAll(async () => {
    const c = admin();
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await c.end();
  });

  it('numbers every result per image in creation order, keeps the newest current, and the next task result follows', async () => {
    const old = ALL_MIGRATIONS.filter((m) => m !== ResultVersions1765200000000);
    expect(old).toHaveLength(ALL_MIGRATIONS.length - 1);
    const before = source(old);
    await before.initialize();
    await before.runMigrations({ transaction: 'each' });
    const [{ id: userId }] = await before.query(
      `INSERT INTO users (email, password_hash) VALUES ('m@example.org', 'x') RETURNING id`,
    );
    const image = async (n: number) =>
      (
        await before.query(
          `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
         VALUES ($1, $2, $3, 'image/png', 1, 100, 80) RETURNING id`,
          [userId, `i${n}.png`, `2026/01/${randomUUID()}.png`],
        )
      )[0].id as number;
    const [a, b, c] = [await image(1), await image(2), await image(3)];
    const poly = (id: number, type: string) => ({
      id,
      type,
      parentId: type === 'internal' ? 1 : null,
      points: [
        [1, 1],
        [9, 1],
        [9, 9],
      ],
      class: 'spheroid',
      confidence: 0.9,
      features: { area: 32 },
    });
    // Results the old way (old spheroseg_complete_task). For image a the first two rows' times are the
    // other way round from their ids (a clock step, a restored dump): versions follow created_at.
    const complete = async (img: number, at: string, polygons: unknown[], externals: number) => {
      const taskId = randomUUID();
      await before.query(
        `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1::uuid, $1::text, $2, $3, 'processing', 1)`,
        [taskId, img, userId],
      );
      await before.query('SELECT * FROM spheroseg_complete_task($1, 100, 80, 5, $2, $3::jsonb)', [
        taskId,
        externals,
        JSON.stringify(polygons),
      ]);
      await before.query('UPDATE segmentation_results SET created_at = $1 WHERE task_id = $2', [at, taskId]);
      return taskId;
    };
    const a1 = await complete(a, '2026-01-01T11:00:00Z', [poly(1, 'external')], 1);
    const b1 = await complete(
      b,
      '2026-01-01T10:30:00Z',
      [poly(1, 'external'), poly(2, 'internal'), poly(3, 'external')],
      2,
    );
    const a2 = await complete(a, '2026-01-01T10:00:00Z', [], 0);
    const a3 = await complete(a, '2026-01-01T12:00:00Z', [poly(1, 'external'), poly(2, 'internal')], 1);
    const countBefore = (await before.query('SELECT count(*)::int AS n FROM segmentation_results'))[0].n;
    await before.destroy();

    const after = source(ALL_MIGRATIONS);
    await after.initialize();
    try {
      expect((await after.runMigrations({ transaction: 'each' })).map((m) => m.name)).toEqual([
        'ResultVersions1765200000000',
      ]);
      const rows = await after.query(
        `SELECT task_id, image_id, version, source, edited_by, is_current, polygon_count, spheroid_count
           FROM segmentation_results ORDER BY image_id, version`,
      );
      expect(rows).toHaveLength(countBefore);
      expect(rows).toEqual([
        {
          task_id: a2,
          image_id: a,
          version: 1,
          source: 'ml',
          edited_by: null,
          is_current: false,
          polygon_count: 0,
          spheroid_count: 0,
        },
        {
          task_id: a1,
          image_id: a,
          version: 2,
          source: 'ml',
          edited_by: null,
          is_current: false,
          polygon_count: 1,
          spheroid_count: 1,
        },
        {
          task_id: a3,
          image_id: a,
          version: 3,
          source: 'ml',
          edited_by: null,
          is_current: true,
          polygon_count: 2,
          spheroid_count: 1,
        },
        {
          task_id: b1,
          image_id: b,
          version: 1,
          source: 'ml',
          edited_by: null,
          is_current: true,
          polygon_count: 3,
          spheroid_count: 2,
        },
      ]);
      // The replaced completion function makes a task's result the next version; the first result of c is 1.
      for (const img of [a, c]) {
        const taskId = randomUUID();
        await after.query(
          `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1::uuid, $1::text, $2, $3, 'processing', 1)`,
          [taskId, img, userId],
        );
        const done = await after.query('SELECT * FROM spheroseg_complete_task($1, 100, 80, 5, 1, $2::json)', [
          taskId,
          JSON.stringify([poly(1, 'external')]),
        ]);
        expect(done).toHaveLength(1);
      }
      const current = await after.query(
        'SELECT image_id, version FROM segmentation_results WHERE is_current ORDER BY image_id',
      );
      expect(current).toEqual([
        { image_id: a, version: 4 },
        { image_id: b, version: 1 },
        { image_id: c, version: 1 },
      ]);
      // And back down: the old schema again, every result of a task kept.
      await after.undoLastMigration({ transaction: 'each' });
      expect((await after.query('SELECT count(*)::int AS n FROM segmentation_results'))[0].n).toBe(
        countBefore + 2,
      );
      expect(
        await after.query(
          'SELECT image_id, polygon_count FROM segmentation_results WHERE is_current ORDER BY image_id',
        ),
      ).toEqual([
        { image_id: a, polygon_count: 1 },
        { image_id: b, polygon_count: 2 },
        { image_id: c, polygon_count: 1 },
      ]);
    } finally {
      await after.destroy();
    }
  });
});
