import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { ALL_MIGRATIONS } from '../../migrations';
import { applyMigrations } from '../support/own-database';

/**
 * `npm run migration:run` on a database of the version before projects (migrations up to
 * EnqueueFunction) keeps every image, task and result: images become personal (project_id NULL), the
 * new enqueue function works on them, and a pending invitation is activated by a later registration.
 */
jest.setTimeout(120_000);
const run = promisify(execFile);

describe('migration 1765100000000-Projects on a previous-version database', () => {
  const admin = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `spheroseg_mig_${randomBytes(4).toString('hex')}`;
  const url = (() => {
    const u = new URL(admin);
    u.pathname = `/${name}`;
    return u.toString();
  })();
  let pg: Client;

  beforeAll(async () => {
    const a = new Client({ connectionString: admin });
    await a.connect();
    await a.query(`CREATE DATABASE "${name}"`);
    await a.end();
    const before = ALL_MIGRATIONS.slice(
      0,
      ALL_MIGRATIONS.findIndex((m) => m.name.startsWith('Projects')),
    );
    await applyMigrations(url, before);
    pg = new Client({ connectionString: url });
    await pg.connect();
  });
  afterAll(async () => {
    await pg?.end();
    const a = new Client({ connectionString: admin });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await a.end();
  });

  it('keeps every image, task and result; images are personal; enqueue and invitations work after it', async () => {
    const [{ id: user }] = (
      await pg.query(`INSERT INTO users (email, password_hash) VALUES ('old@example.org', 'x') RETURNING id`)
    ).rows;
    const imgs = (
      await pg.query(
        `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
         SELECT $1, 'a.png', 'old/' || g || '.png', 'image/png', 4, 64, 48 FROM generate_series(1, 5) g RETURNING id`,
        [user],
      )
    ).rows.map((r) => r.id as number);
    const tasks = [randomUUID(), randomUUID()];
    for (const [i, t] of tasks.entries()) {
      await pg.query(
        `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1::uuid, $1::text, $2, $3, 'completed', 1)`,
        [t, imgs[i], user],
      );
      await pg.query(
        `INSERT INTO segmentation_results (task_id, image_id, image_width, image_height, processing_time_ms, polygon_count, polygons) VALUES ($1, $2, 64, 48, 1, 0, '[]')`,
        [t, imgs[i]],
      );
    }
    const snapshot = async () => ({
      images: (await pg.query('SELECT id, user_id, storage_path FROM images ORDER BY id')).rows,
      tasks: (await pg.query('SELECT task_id, image_id, status FROM queue_jobs ORDER BY task_id')).rows,
      results: (await pg.query('SELECT task_id, image_id, is_current FROM segmentation_results ORDER BY id'))
        .rows,
    });
    const before = await snapshot();

    const root = path.resolve(__dirname, '..', '..');
    const { stdout } = await run('npm', ['run', '--silent', 'migration:run'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: url },
    });
    expect(stdout).toContain('migrations applied');

    expect(await snapshot()).toEqual(before);
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM images WHERE project_id IS NOT NULL')).rows[0].n,
    ).toBe(0);
    // The new enqueue function queues a personal image of its user, and refuses another's.
    const ok = await pg.query(
      `SELECT o_outcome FROM spheroseg_enqueue($1, '{}'::int[], '{0}', $2::int[], $3::uuid[], '{1}', 100)`,
      [user, [imgs[4]], [randomUUID()]],
    );
    expect(ok.rows.map((r) => r.o_outcome)).toEqual(['ok']);
    const refused = await pg.query(
      `SELECT o_outcome FROM spheroseg_enqueue($1, '{}'::int[], '{0}', $2::int[], $3::uuid[], '{1}', 100)`,
      [user + 1, [imgs[3]], [randomUUID()]],
    );
    expect(refused.rows.map((r) => r.o_outcome)).toEqual(['missing']);
    // A pending invitation becomes active when the account is created.
    const [{ id: project }] = (
      await pg.query(`INSERT INTO projects (name, owner_id) VALUES ('p', $1) RETURNING id`, [user])
    ).rows;
    await pg.query(
      `INSERT INTO project_members (project_id, email, role) VALUES ($1, 'Later@Example.org', 'viewer')`,
      [project],
    );
    const [{ id: later }] = (
      await pg.query(
        `INSERT INTO users (email, password_hash) VALUES ('later@example.org', 'x') RETURNING id`,
      )
    ).rows;
    expect(
      (await pg.query('SELECT user_id FROM project_members WHERE project_id = $1', [project])).rows,
    ).toEqual([{ user_id: later }]);
  });
});
