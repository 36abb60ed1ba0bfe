import { startTestApp, TestApp } from '../support/app';
import { TaskBody, uploadImage } from '../support/fixtures';
import { Reconciler } from '../../src/segmentation/reconciler';
import { SegmentationQueue } from '../../src/queue/segmentation-queue';
import { ownDatabase } from '../support/own-database';

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
});
