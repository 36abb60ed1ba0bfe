import { startTestApp, TestApp } from '../support/app';
import { TaskBody, uploadImage } from '../support/fixtures';
import { Reconciler } from '../../src/segmentation/reconciler';
import { SegmentationQueue } from '../../src/queue/segmentation-queue';
import { ownDatabase } from '../support/own-database';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';

const ADMIN = { email: `admin_fair_${Date.now()}@example.org`, password: 'admin-password-1' };

/**
 * QUEUE_FAIRNESS=user (the default) in the application (an `api` process: it only enqueues, so queued
 * jobs stay in their users' lists): queue metrics, pause, cancel and the reconciler see those jobs.
 */
describe('queued tasks in the user lists, seen by the rest of the application', () => {
  let t: TestApp;
  let admin: string;
  // A database of its own: the reconciler looks at every open task of its database (see ownDatabase).
  const db = ownDatabase('fairapp');
  beforeAll(async () => {
    t = await startTestApp({ DATABASE_URL: await db.create(), QUEUE_NAME: `${process.env.QUEUE_NAME}_fairapp`, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, RECONCILE_GRACE_MS: '0' }, 'api');
    admin = (await (await t.request('/api/auth/login', { method: 'POST', json: ADMIN })).json()).accessToken;
  });
  afterAll(async () => {
    await t.close();
    await db.drop();
  });

  const metrics = async () => (await t.request('/api/queue/metrics', { token: admin })).json();

  it('counts them as waiting (paused while paused), a cancel takes one out, the reconciler leaves them alone', async () => {
    const tasks: TaskBody[] = [];
    const tokens: string[] = [];
    for (let u = 0; u < 2; u++) {
      const { token } = await t.register();
      const ids = [await uploadImage(t, token), await uploadImage(t, token)];
      const res = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: ids } });
      expect(res.status).toBe(202);
      tasks.push(...((await res.json()) as { tasks: TaskBody[] }).tasks);
      tokens.push(token);
    }
    expect(await metrics()).toMatchObject({ waiting: 4, paused: 0, isPaused: false });
    const prom = await (await t.request('/api/metrics')).text();
    expect(prom).toMatch(/segmentation_queue_jobs\{state="waiting"\} 4\b/);

    // Live jobs in the user lists are not "lost": nothing is queued again.
    expect(await t.app.get(Reconciler).reconcileOnce()).toBe(0);
    const queue = t.app.get(SegmentationQueue);
    const job = (await queue.getJob(tasks[1].taskId))!;
    expect(await queue.stateOf(job)).toBe('waiting');

    expect((await t.request('/api/queue/pause', { method: 'POST', token: admin })).status).toBe(200);
    expect(await metrics()).toMatchObject({ waiting: 0, paused: 4, isPaused: true });
    expect(await queue.stateOf(job)).toBe('paused');
    expect((await t.request('/api/queue/resume', { method: 'POST', token: admin })).status).toBe(200);

    const cancel = await t.request(`/api/segmentation/tasks/${tasks[0].taskId}`, { method: 'DELETE', token: tokens[0] });
    expect(cancel.status).toBe(200);
    expect(await metrics()).toMatchObject({ waiting: 3 });
    expect(await queue.getJob(tasks[0].taskId)).toBeNull(); // its Bull job is gone with it
  });
  it('a pass walks every stale open task: a lost job behind a backlog of 600 older live ones is queued again', async () => {
    const { user } = await t.register();
    const ds = t.app.get<DataSource>(getDataSourceToken());
    const queue = t.app.get(SegmentationQueue);
    const images = async (n: number): Promise<number[]> =>
      (
        (await ds.query(
          `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
           SELECT $1, 'x.png', 'backlog/' || $2 || '/' || g || '.png', 'image/png', 4, 64, 48 FROM generate_series(1, $3::int) g RETURNING id`,
          [user.id, `${Date.now()}`, n],
        )) as Array<{ id: number }>
      ).map((r) => r.id);
    const tasksOf = async (ids: number[]): Promise<Array<{ task_id: string; image_id: number }>> =>
      ds.query(
        `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
         SELECT u, u::text, i, $2, 'queued', 1 FROM (SELECT gen_random_uuid() AS u, i FROM unnest($1::int[]) i) x RETURNING task_id, image_id`,
        [ids, user.id],
      );
    // 600 live jobs, all untouched for longer than the lost one (one statement: one updated_at to the microsecond).
    const live = await tasksOf(await images(600));
    await queue.addBulk(live.map((r) => ({ jobId: r.task_id, priority: 1, data: { taskId: r.task_id, imageId: r.image_id, userId: user.id } })));
    const [lost] = await tasksOf(await images(1)); // recorded, but its job never reached Redis
    expect(await queue.getJob(lost.task_id)).toBeNull();

    const reconciler = t.app.get(Reconciler);
    expect(await reconciler.reconcileOnce()).toBe(1);
    expect(await queue.getJob(lost.task_id)).not.toBeNull();
    expect(await reconciler.reconcileOnce()).toBe(0);
  });
});
