import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { startTestApp, TestApp } from '../../support/app';

/**
 * `POST /api/projects/:id/segmentation` (CONTRACT §3): up to 10 000 images in one call, all or nothing
 * against MAX_PENDING_TASKS_PER_USER, idempotent, tasks of the caller (their fair turn), `unsegmented`
 * vs `all`; and the project's task list and export.
 */
jest.setTimeout(120_000);
const LIMIT = 10_050;

describe('project-wide segmentation', () => {
  let t: TestApp;
  let pg: Client;
  let owner: { token: string; user: { id: number } };
  let editor: { token: string; user: { id: number; email: string } };

  const project = async (name: string): Promise<number> => {
    const id = (
      await (await t.request('/api/projects', { method: 'POST', token: owner.token, json: { name } })).json()
    ).id as number;
    const m = await t.request(`/api/projects/${id}/members`, {
      method: 'POST',
      token: owner.token,
      json: { email: editor.user.email, role: 'editor' },
    });
    expect(m.status).toBe(201);
    return id;
  };
  const images = async (projectId: number, n: number): Promise<number[]> =>
    (
      await pg.query<{ id: number }>(
        `INSERT INTO images (user_id, project_id, original_name, storage_path, mime_type, size_bytes, width, height)
         SELECT $1, $2, 'x.png', 'ps/' || $3 || '/' || g || '.png', 'image/png', 4, 64, 48 FROM generate_series(1, $4::int) g RETURNING id`,
        [owner.user.id, projectId, randomBytes(6).toString('hex'), n],
      )
    ).rows.map((r) => r.id);
  const queue = (projectId: number, json: unknown = {}) =>
    t.request(`/api/projects/${projectId}/segmentation`, { method: 'POST', token: editor.token, json });

  beforeAll(async () => {
    t = await startTestApp(
      { QUEUE_NAME: `${process.env.QUEUE_NAME}_projseg`, MAX_PENDING_TASKS_PER_USER: String(LIMIT) },
      'api',
    );
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
    owner = await t.register();
    editor = await t.register();
  });
  afterAll(async () => {
    await pg?.end();
    await t?.close();
  });

  it('10 000 images in one call, the caller’s tasks; the same call again reuses them; the project’s task list has them', async () => {
    const p = await project('Big');
    const ids = await images(p, 10_000);
    const started = Date.now();
    const res = await queue(p, { priority: 3 });
    const ms = Date.now() - started;
    expect(res.status).toBe(202);
    const tasks = (await res.json()).tasks as Array<{
      taskId: string;
      imageId: number;
      status: string;
      priority: number;
    }>;
    expect(tasks).toHaveLength(10_000);
    expect(new Set(tasks.map((x) => x.imageId))).toEqual(new Set(ids));
    expect(tasks.every((x) => x.status === 'queued' && x.priority === 3)).toBe(true);
    // The caller's tasks: their fair turn.
    expect(
      (await pg.query('SELECT DISTINCT user_id FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids])).rows,
    ).toEqual([{ user_id: editor.user.id }]);
    const again = await queue(p);
    expect(again.status).toBe(202);
    const reused = (await again.json()).tasks as Array<{ taskId: string }>;
    expect(new Set(reused.map((x) => x.taskId))).toEqual(new Set(tasks.map((x) => x.taskId)));
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids]))
        .rows[0].n,
    ).toBe(10_000);
    const list = await (
      await t.request(`/api/segmentation/tasks?projectId=${p}&status=queued&limit=5`, { token: owner.token })
    ).json();
    expect(list.total).toBe(10_000);
    expect(list.items).toHaveLength(5);
    // The owner queued none of them: their own list is empty.
    expect((await (await t.request('/api/segmentation/tasks', { token: owner.token })).json()).total).toBe(0);
    // A project's task list holds its own images' tasks only: one task in another project is not in it.
    const other = await project('Other tasks');
    const [otherImage] = await images(other, 1);
    expect(
      (
        await t.request(`/api/images/${otherImage}/segmentation`, {
          method: 'POST',
          token: owner.token,
          json: {},
        })
      ).status,
    ).toBe(202);
    const totalOf = async (id: number): Promise<number> =>
      (
        await (
          await t.request(`/api/segmentation/tasks?projectId=${id}&limit=5`, { token: owner.token })
        ).json()
      ).total as number;
    expect(await totalOf(p)).toBe(10_000);
    expect(await totalOf(other)).toBe(1);
    console.log(`project segmentation of 10 000 images: ${ms} ms`);
  });

  it('past MAX_PENDING_TASKS_PER_USER: 429 for the whole call, nothing queued', async () => {
    const p = await project('Over');
    const ids = await images(p, 100); // the editor has 10 000 open: 100 more passes the limit
    const res = await queue(p);
    expect(res.status).toBe(429);
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids]))
        .rows[0].n,
    ).toBe(0);
  });

  it('more than 10 000 images to queue: 400, nothing queued', async () => {
    const p = await project('Huge');
    const ids = await images(p, 10_001);
    const res = await queue(p);
    expect(res.status).toBe(400);
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids]))
        .rows[0].n,
    ).toBe(0);
  });

  it('`unsegmented` skips images with a current result, `all` includes them; the project export has them', async () => {
    // Another user with room under the limit.
    const other = await t.register();
    const p = (
      await (
        await t.request('/api/projects', { method: 'POST', token: other.token, json: { name: 'Scope' } })
      ).json()
    ).id as number;
    const [done, fresh] = (
      await pg.query<{ id: number }>(
        `INSERT INTO images (user_id, project_id, original_name, storage_path, mime_type, size_bytes, width, height)
         SELECT $1, $2, 'x.png', 'ps/' || $3 || '/' || g || '.png', 'image/png', 4, 64, 48 FROM generate_series(1, 2) g RETURNING id`,
        [other.user.id, p, randomBytes(6).toString('hex')],
      )
    ).rows.map((r) => r.id);
    const taskId = randomUUID();
    await pg.query(
      `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1::uuid, $1::text, $2, $3, 'completed', 1)`,
      [taskId, done, other.user.id],
    );
    await pg.query(
      `INSERT INTO segmentation_results (task_id, image_id, image_width, image_height, processing_time_ms, polygon_count, polygons, version, spheroid_count) VALUES ($1, $2, 64, 48, 1, 0, '[]', 1, 0)`,
      [taskId, done],
    );
    const u = await t.request(`/api/projects/${p}/segmentation`, {
      method: 'POST',
      token: other.token,
      json: { scope: 'unsegmented' },
    });
    expect((await u.json()).tasks.map((x: { imageId: number }) => x.imageId)).toEqual([fresh]);
    const a = await t.request(`/api/projects/${p}/segmentation`, {
      method: 'POST',
      token: other.token,
      json: { scope: 'all' },
    });
    expect((await a.json()).tasks.map((x: { imageId: number }) => x.imageId).sort()).toEqual(
      [done, fresh].sort(),
    );
    const csv = await (
      await t.request(`/api/segmentation/export?format=csv&projectId=${p}`, { token: other.token })
    ).text();
    expect(csv.split('\r\n')[0]).toContain('image_id');
    const coco = await (
      await t.request(`/api/segmentation/export?format=coco&projectId=${p}`, { token: other.token })
    ).json();
    expect(coco.images.map((i: { id: number }) => i.id)).toEqual([done]);
  });
});
