import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { startTestApp, TestApp } from '../support/app';
import { uploadImage } from '../support/fixtures';

describe('MAX_PENDING_TASKS_PER_USER', () => {
  let t: TestApp;
  let ds: DataSource;
  const admin = { email: `admin_lim_${Date.now()}@example.org`, password: 'admin-password-1' };

  beforeAll(async () => {
    t = await startTestApp({
      QUEUE_NAME: `${process.env.QUEUE_NAME}_limits`,
      MAX_PENDING_TASKS_PER_USER: '3',
      ADMIN_EMAIL: admin.email,
      ADMIN_PASSWORD: admin.password,
      ML_SERVICE_URL: 'http://127.0.0.1:9', // nothing is processed here: the queue stays paused
    });
    ds = t.app.get(getDataSourceToken());
    const token = (await (await t.request('/api/auth/login', { method: 'POST', json: admin })).json()).accessToken;
    await t.request('/api/queue/pause', { method: 'POST', token });
  });
  afterAll(() => t.close());

  it('refuses a whole batch that would pass the limit (429, nothing queued), then single tasks past it', async () => {
    const { token, user } = await t.register();
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await uploadImage(t, token));
    const count = async () =>
      (await ds.query('SELECT count(*)::int AS n FROM queue_jobs WHERE user_id = $1', [user.id]))[0].n as number;

    const batch = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: ids } });
    expect(batch.status).toBe(429);
    expect(await batch.json()).toMatchObject({ statusCode: 429, error: 'Too Many Requests' });
    expect(await count()).toBe(0);

    const ok = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: ids.slice(0, 3) } });
    expect(ok.status).toBe(202);
    // Asking again for an image that already has an open task is not a new pending task.
    expect((await t.request(`/api/images/${ids[0]}/segmentation`, { method: 'POST', token })).status).toBe(200);
    expect((await t.request(`/api/images/${ids[3]}/segmentation`, { method: 'POST', token })).status).toBe(429);
    expect(await count()).toBe(3);

    // Another user is not affected.
    const other = await t.register();
    const theirs = await uploadImage(t, other.token);
    expect((await t.request(`/api/images/${theirs}/segmentation`, { method: 'POST', token: other.token })).status).toBe(202);
  });

  describe('the per-user bound of open tasks (enqueue_budget) never lets a user past the limit', () => {
    const bound = async (userId: number) =>
      ((await ds.query('SELECT open_upper FROM enqueue_budget WHERE user_id = $1', [userId]))[0]?.open_upper ?? null) as number | null;
    const open = async (userId: number) =>
      (await ds.query(`SELECT count(*)::int AS n FROM queue_jobs WHERE user_id = $1 AND status IN ('queued', 'processing')`, [userId]))[0].n as number;
    const enqueue = async (token: string, id: number) => (await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token })).status;

    it('an enqueue adds to the bound; finished tasks leave it above the truth, and a request it would refuse is counted exactly', async () => {
      const { token, user } = await t.register();
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await uploadImage(t, token));
      expect(await bound(user.id)).toBeNull();
      for (const id of ids.slice(0, 3)) expect(await enqueue(token, id)).toBe(202);
      expect(await bound(user.id)).toBe(3);
      // Two tasks finish (as a worker's completion would record them): the bound is not told.
      await ds.query(`UPDATE queue_jobs SET status = 'completed' WHERE task_id IN (SELECT task_id FROM queue_jobs WHERE user_id = $1 ORDER BY created_at LIMIT 2)`, [user.id]);
      expect(await bound(user.id)).toBe(3);
      // 3 + 1 > 3 by the bound, 1 + 1 by the count: queued, and the exact figure is stored.
      expect(await enqueue(token, ids[3])).toBe(202);
      expect(await bound(user.id)).toBe(2);
      expect(await enqueue(token, ids[4])).toBe(202);
      expect(await open(user.id)).toBe(3);
      const sixth = await uploadImage(t, token);
      expect(await enqueue(token, sixth)).toBe(429);
      expect(await open(user.id)).toBe(3);
    });

    it('a task opened outside an enqueue (dead-letter retry, other SQL) drops the bound, so the next enqueue counts', async () => {
      const { token, user } = await t.register();
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push(await uploadImage(t, token));
      expect(await enqueue(token, ids[0])).toBe(202);
      expect(await bound(user.id)).toBe(1);
      // A failed task put back in the queue (what POST /api/queue/dead-letter/:id/retry writes).
      await ds.query(`UPDATE queue_jobs SET status = 'failed' WHERE user_id = $1`, [user.id]);
      await ds.query(`UPDATE queue_jobs SET status = 'queued' WHERE user_id = $1`, [user.id]);
      expect(await bound(user.id)).toBeNull();
      // Rows inserted by other SQL.
      expect(await enqueue(token, ids[1])).toBe(202);
      expect(await bound(user.id)).toBe(2);
      const task = '00000000-0000-4000-8000-' + String(user.id).padStart(12, '0');
      await ds.query(`INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1::uuid, $1::text, $2, $3, 'queued', 1)`, [task, ids[2], user.id]);
      expect(await bound(user.id)).toBeNull();
      // 3 open now: a fourth is refused, which a stale bound of 2 would have let through.
      const fourth = await uploadImage(t, token);
      expect(await enqueue(token, fourth)).toBe(429);
      expect(await open(user.id)).toBe(3);
    });
  });

  it('validates the batch body: 1..500 integer ids', async () => {
    const { token } = await t.register();
    const tooMany = Array.from({ length: 501 }, (_, i) => i + 1);
    for (const imageIds of [[], tooMany, ['x'], [1.5]]) {
      const res = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds } });
      expect(res.status).toBe(400);
      expect(JSON.stringify((await res.json()).message)).toContain('imageIds');
    }
    expect((await t.request('/api/segmentation/batch', { method: 'POST', token, json: {} })).status).toBe(400);
  });
});
