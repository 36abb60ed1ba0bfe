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
