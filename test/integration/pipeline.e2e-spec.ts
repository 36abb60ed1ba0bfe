import { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import { startTestApp, TestApp } from '../support/app';
import { MlStub } from '../support/ml-stub';
import { eventually, uploadImage, waitForTask, TaskBody } from '../support/fixtures';
import { Reconciler } from '../../src/segmentation/reconciler';
import { SegmentationQueue } from '../../src/queue/segmentation-queue';
import { TaskRunner } from '../../src/segmentation/task-runner';
import { ownDatabase } from '../support/own-database';

const ADMIN = { email: `admin_pipe_${Date.now()}@example.org`, password: 'admin-password-1' };

async function adminToken(t: TestApp): Promise<string> {
  const res = await t.request('/api/auth/login', { method: 'POST', json: ADMIN });
  return ((await res.json()) as { accessToken: string }).accessToken;
}

describe('segmentation pipeline (one all-role process, ML test server)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let t: TestApp;
  let admin: string;
  let ds: DataSource;

  // A database of its own: the reconciler test below runs a pass over every open task of the database,
  // and the other files of this run leave open tasks there (see ownDatabase).
  const db = ownDatabase('pipe');

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({
      DATABASE_URL: await db.create(),
      QUEUE_NAME: `${process.env.QUEUE_NAME}_pipe`,
      ML_SERVICE_URL: stub.url,
      QUEUE_CONCURRENCY: '1',
      QUEUE_BACKOFF_DELAY: '50',
      QUEUE_MAX_ATTEMPTS: '3',
      ML_BREAKER_VOLUME_THRESHOLD: '1000', // this suite checks retries, not the breaker
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      RECONCILE_INTERVAL_MS: '0', // passes are run by the test
      RECONCILE_GRACE_MS: '0',
    });
    admin = await adminToken(t);
    ds = t.app.get(getDataSourceToken());
  });
  afterAll(async () => {
    await t.close();
    await stub.stop();
    await db.drop();
  });
  beforeEach(() => stub.reset());

  const enqueue = async (token: string, imageId: number, json: object = {}) =>
    t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json });

  it('takes a task from POST to completed, with its result and a queue_jobs row', async () => {
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    const res = await enqueue(token, imageId);
    expect(res.status).toBe(202);
    const task = (await res.json()) as TaskBody;
    expect(task).toMatchObject({ imageId, status: 'queued', priority: 1, progress: 0, attempts: 0, error: null });
    expect(task.taskId).toMatch(/^[0-9a-f-]{36}$/);

    const done = await waitForTask(t, token, task.taskId);
    expect(done).toMatchObject({ status: 'completed', progress: 100, attempts: 1 });
    expect(done.startedAt).not.toBeNull();
    expect(done.completedAt).not.toBeNull();
    expect(stub.calls).toHaveLength(1);
    expect((stub.calls[0].body as { task_id: string }).task_id).toBe(task.taskId);

    const result = await (await t.request(`/api/images/${imageId}/segmentation`, { token })).json();
    expect(result).toMatchObject({ taskId: task.taskId, imageId, imageWidth: 64, imageHeight: 48 });
    expect(result.polygons[0]).toMatchObject({ type: 'external', parentId: null, class: 'spheroid' });
    expect(Object.keys(result.polygons[0].features)).toEqual(
      expect.arrayContaining(['area', 'perimeter', 'circularity', 'majorAxis', 'centroidX']),
    );
    const image = await (await t.request(`/api/images/${imageId}`, { token })).json();
    expect(image.segmentationStatus).toBe('completed');
    const rows = await ds.query('SELECT status, job_id FROM queue_jobs WHERE task_id = $1', [task.taskId]);
    expect(rows).toEqual([{ status: 'completed', job_id: task.taskId }]);
  });

  it('is idempotent while a task is open: same task (200), one job', async () => {
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    try {
      const { token } = await t.register();
      const imageId = await uploadImage(t, token);
      const first = await enqueue(token, imageId);
      const second = await enqueue(token, imageId);
      expect(first.status).toBe(202);
      expect(second.status).toBe(200);
      const a = (await first.json()) as TaskBody;
      const b = (await second.json()) as TaskBody;
      expect(b.taskId).toBe(a.taskId);
      const count = await ds.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = $1', [imageId]);
      expect(count[0].n).toBe(1);
    } finally {
      await t.request('/api/queue/resume', { method: 'POST', token: admin });
    }
  });

  it('validates priority: 400 above 5 for non-premium users, 400 outside 1..10', async () => {
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    expect((await enqueue(token, imageId, { priority: 6 })).status).toBe(400);
    expect((await enqueue(token, imageId, { priority: 0 })).status).toBe(400);
    expect((await enqueue(token, imageId, { priority: 'high' })).status).toBe(400);
    const rows = await ds.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = $1', [imageId]);
    expect(rows[0].n).toBe(0);
    expect((await enqueue(999_999_999 as never, imageId)).status).toBe(401);
  });

  it('serves premium tasks before normal ones when both wait for one worker', async () => {
    const normal = await t.register();
    const premium = await t.register();
    const patch = await t.request(`/api/admin/users/${premium.user.id}`, { method: 'PATCH', token: admin, json: { isPremium: true } });
    expect(patch.status).toBe(200);
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    const normalTasks: string[] = [];
    const premiumTasks: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const id = await uploadImage(t, normal.token);
        normalTasks.push(((await (await enqueue(normal.token, id)).json()) as TaskBody).taskId);
      }
      for (let i = 0; i < 3; i++) {
        const id = await uploadImage(t, premium.token);
        const task = (await (await enqueue(premium.token, id)).json()) as TaskBody;
        expect(task.priority).toBe(10);
        premiumTasks.push(task.taskId);
      }
    } finally {
      await t.request('/api/queue/resume', { method: 'POST', token: admin });
    }
    const doneN = await Promise.all(normalTasks.map((id) => waitForTask(t, normal.token, id)));
    const doneP = await Promise.all(premiumTasks.map((id) => waitForTask(t, premium.token, id)));
    const order = stub.calls.map((c) => (c.body as { task_id: string }).task_id);
    expect(order.slice(0, 3).sort()).toEqual([...premiumTasks].sort());
    expect(order.slice(3).sort()).toEqual([...normalTasks].sort());
    const lastPremium = Math.max(...doneP.map((d) => Date.parse(d.startedAt!)));
    const firstNormal = Math.min(...doneN.map((d) => Date.parse(d.startedAt!)));
    expect(lastPremium).toBeLessThanOrEqual(firstNormal);
  });

  it('cancels a queued task (its job is removed) and answers 409 once finished', async () => {
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    const task = (await (await enqueue(token, imageId)).json()) as TaskBody;
    const res = await t.request(`/api/segmentation/tasks/${task.taskId}`, { method: 'DELETE', token });
    await t.request('/api/queue/resume', { method: 'POST', token: admin });
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('cancelled');
    expect((await t.request(`/api/segmentation/tasks/${task.taskId}`, { method: 'DELETE', token })).status).toBe(409);
    // A later task of the same user runs, the cancelled one never reaches the ML service.
    const other = (await (await enqueue(token, await uploadImage(t, token))).json()) as TaskBody;
    await waitForTask(t, token, other.taskId);
    expect(stub.calls.map((c) => (c.body as { task_id: string }).task_id)).not.toContain(task.taskId);
  });

  it('cancels a processing task and drops its result when the ML answer arrives', async () => {
    stub.behave({ latencyMs: 1500 });
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    const task = (await (await enqueue(token, imageId)).json()) as TaskBody;
    await waitForTask(t, token, task.taskId, (x) => x.status === 'processing');
    await stub.waitForCalls(1);
    const res = await t.request(`/api/segmentation/tasks/${task.taskId}`, { method: 'DELETE', token });
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 2000));
    const after = await waitForTask(t, token, task.taskId);
    expect(after.status).toBe('cancelled');
    expect((await t.request(`/api/images/${imageId}/segmentation`, { token })).status).toBe(404);
    const rows = await ds.query('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = $1', [task.taskId]);
    expect(rows[0].n).toBe(0);
  });

  it('fails at once on an ML 400: one attempt, not dead-lettered, circuit closed', async () => {
    stub.behave({ status: 400, body: { success: false, error: 'unreadable image' } });
    const { token } = await t.register();
    const task = (await (await enqueue(token, await uploadImage(t, token))).json()) as TaskBody;
    const done = await waitForTask(t, token, task.taskId);
    expect(done).toMatchObject({ status: 'failed', attempts: 1 });
    expect(done.error).toContain('unreadable image');
    expect(stub.calls).toHaveLength(1);
    const dl = await (await t.request('/api/queue/dead-letter', { token: admin })).json();
    expect(dl.items.map((x: TaskBody) => x.taskId)).not.toContain(task.taskId);
    const ml = await (await t.request('/api/health/services/ml')).json();
    expect(ml.details.circuit).toBe('closed');
  });

  it('dead-letters after QUEUE_MAX_ATTEMPTS ML 500s, and a retry from the dead-letter list completes', async () => {
    stub.behave({ status: 500 });
    const { token } = await t.register();
    const task = (await (await enqueue(token, await uploadImage(t, token))).json()) as TaskBody;
    const done = await waitForTask(t, token, task.taskId);
    expect(done).toMatchObject({ status: 'failed', attempts: 3 });
    expect(stub.calls).toHaveLength(3);
    const dl = await (await t.request('/api/queue/dead-letter', { token: admin })).json();
    expect(dl.items.map((x: TaskBody) => x.taskId)).toContain(task.taskId);
    const metrics = await (await t.request('/api/queue/metrics', { token: admin })).json();
    expect(metrics.deadLettered).toBeGreaterThanOrEqual(1);

    stub.behave({});
    const forbidden = await t.request(`/api/queue/dead-letter/${task.taskId}/retry`, { method: 'POST', token });
    expect(forbidden.status).toBe(403);
    const retry = await t.request(`/api/queue/dead-letter/${task.taskId}/retry`, { method: 'POST', token: admin });
    expect(retry.status).toBe(202);
    expect(await retry.json()).toMatchObject({ taskId: task.taskId, status: 'queued', attempts: 0 });
    const again = await waitForTask(t, token, task.taskId);
    expect(again).toMatchObject({ status: 'completed', attempts: 1 });
    const dl2 = await (await t.request('/api/queue/dead-letter', { token: admin })).json();
    expect(dl2.items.map((x: TaskBody) => x.taskId)).not.toContain(task.taskId);
  });

  it('queues a batch all or nothing, reusing open tasks', async () => {
    const { token } = await t.register();
    const other = await t.register();
    const a = await uploadImage(t, token);
    const b = await uploadImage(t, token);
    const foreign = await uploadImage(t, other.token);
    const refused = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: [a, foreign] } });
    expect(refused.status).toBe(404);
    const none = await ds.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1::int[])', [[a, b]]);
    expect(none[0].n).toBe(0);
    expect((await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: [] } })).status).toBe(400);

    const ok = await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: [a, b] } });
    expect(ok.status).toBe(202);
    const { tasks } = (await ok.json()) as { tasks: TaskBody[] };
    expect(tasks.map((x) => x.imageId)).toEqual([a, b]);
    await Promise.all(tasks.map((x) => waitForTask(t, token, x.taskId)));
    const list = await (await t.request('/api/segmentation/tasks?status=completed&page=1&limit=1', { token })).json();
    expect(list).toMatchObject({ total: 2, page: 1, limit: 1 });
    expect(list.items).toHaveLength(1);
  });

  it("keeps other users' tasks invisible (404)", async () => {
    const a = await t.register();
    const b = await t.register();
    const task = (await (await enqueue(a.token, await uploadImage(t, a.token))).json()) as TaskBody;
    expect((await t.request(`/api/segmentation/tasks/${task.taskId}`, { token: b.token })).status).toBe(404);
    expect((await t.request(`/api/segmentation/tasks/${task.taskId}`, { method: 'DELETE', token: b.token })).status).toBe(404);
    expect((await t.request(`/api/segmentation/tasks/not-a-uuid`, { token: b.token })).status).toBe(400); // CONTRACT §3: a malformed :taskId is 400
    await waitForTask(t, a.token, task.taskId);
  });

  it('exposes queue metrics and Prometheus series', async () => {
    const m = await (await t.request('/api/queue/metrics', { token: admin })).json();
    for (const k of ['waiting', 'active', 'completed', 'failed', 'delayed', 'paused', 'deadLettered', 'processingRatePerMinute', 'avgWaitMs', 'avgProcessingMs']) {
      expect(typeof m[k]).toBe('number');
    }
    expect(typeof m.isPaused).toBe('boolean');
    expect(m.processingRatePerMinute).toBeGreaterThan(0);
    const text = await (await t.request('/api/metrics')).text();
    for (const series of [
      'segmentation_queue_jobs{state="waiting"}',
      'segmentation_jobs_total{result="completed"}',
      'segmentation_job_duration_seconds_bucket',
      'segmentation_job_wait_seconds_bucket',
      'segmentation_completion_publish_seconds_bucket',
      'ml_circuit_state',
      'ml_requests_total{result="success"}',
      'ml_request_duration_seconds_bucket',
      'db_pool_connections{state="total"}',
      'db_pool_acquire_seconds_bucket',
      'db_query_duration_seconds_bucket',
      'db_slow_queries_total',
      'http_request_duration_seconds_bucket',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text).toContain(series);
    }
    await eventually(async () => (await t.request('/api/health')).status === 200);
  });

  it('queues again a task whose Bull job was lost, and it completes with one result', async () => {
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    const task = (await (await enqueue(token, imageId)).json()) as TaskBody;
    const queue = t.app.get(SegmentationQueue);
    await (await queue.getJob(task.taskId))!.remove(); // what a Redis flush does to it
    expect(await queue.getJob(task.taskId)).toBeNull();

    const reconciler = t.app.get(Reconciler);
    expect(await reconciler.reconcileOnce()).toBeGreaterThanOrEqual(1);
    expect(await queue.getJob(task.taskId)).not.toBeNull();
    expect(await reconciler.reconcileOnce()).toBe(0); // live jobs are left alone
    await t.request('/api/queue/resume', { method: 'POST', token: admin });
    expect((await waitForTask(t, token, task.taskId)).status).toBe('completed');
    const rows = await ds.query('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = $1', [task.taskId]);
    expect(rows[0].n).toBe(1);
  });
  it('a job looked at ahead and cancelled before it starts: its early ML call is aborted and nothing is recorded', async () => {
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    try {
      const { token, user } = await t.register();
      const imageId = await uploadImage(t, token);
      const task = (await (await enqueue(token, imageId)).json()) as TaskBody;
      const runner = t.app.get(TaskRunner);
      const data = { taskId: task.taskId, imageId, userId: user.id };
      const prepared = await runner.prepare(data); // what a busy slot does for its next job
      expect(prepared.fileOk).toBe(true);
      expect(((await (await t.request(`/api/segmentation/tasks/${task.taskId}`, { token })).json()) as TaskBody).status).toBe('queued');

      const cancel = await t.request(`/api/segmentation/tasks/${task.taskId}`, { method: 'DELETE', token });
      expect(cancel.status).toBe(200);
      stub.behave({ hang: true }); // an early call would only end by being aborted
      const outcome = await runner.run(data, { signal: new AbortController().signal, prepared: Promise.resolve(prepared) });
      expect(outcome).toBe('dropped');
      // Time for a call that was not aborted to reach the stub (where it would hang): none is left open.
      await new Promise((r) => setTimeout(r, 500));
      expect(stub.pendingRequests()).toBe(0);
      // Only this task's calls: a call of an earlier test's job may still reach the stub after its reset.
      const mine = stub.calls.filter((c) => (c.body as { task_id: string }).task_id === task.taskId);
      expect(mine.length).toBeLessThanOrEqual(1);
      const rows = await ds.query('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = $1', [task.taskId]);
      expect(rows[0].n).toBe(0);
      const after = (await (await t.request(`/api/segmentation/tasks/${task.taskId}`, { token })).json()) as TaskBody;
      expect(after).toMatchObject({ status: 'cancelled', attempts: 0 });
    } finally {
      await t.request('/api/queue/resume', { method: 'POST', token: admin });
    }
  });

  it("puts the image's storage key in the job as a hint, and a stale hint is not trusted: the call goes out with PostgreSQL's key", async () => {
    await t.request('/api/queue/pause', { method: 'POST', token: admin });
    try {
      const { token, user } = await t.register();
      const imageId = await uploadImage(t, token);
      const otherImage = await uploadImage(t, token); // an existing file, so the stale hint passes the file check
      const task = (await (await enqueue(token, imageId)).json()) as TaskBody;
      const [{ storage_path: key }] = await ds.query('SELECT storage_path FROM images WHERE id = $1', [imageId]);
      const [{ storage_path: otherKey }] = await ds.query('SELECT storage_path FROM images WHERE id = $1', [otherImage]);
      const job = await t.app.get(SegmentationQueue).getJob(task.taskId);
      expect(job!.data).toEqual({ taskId: task.taskId, imageId, userId: user.id, storagePath: key });

      const runner = t.app.get(TaskRunner);
      const stale = { taskId: task.taskId, imageId, userId: user.id, storagePath: otherKey };
      stub.behave({ latencyMs: 200 }); // the early call with the stale key is still out when the claim answers
      const outcome = await runner.run(stale, { signal: new AbortController().signal, prepared: runner.prepare(stale) });
      expect(outcome).toBe('completed');
      const mine = stub.calls.filter((c) => (c.body as { task_id: string }).task_id === task.taskId);
      expect(mine.map((c) => (c.body as { image_path: string }).image_path).at(-1)).toBe(key);
      const rows = await ds.query('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = $1', [task.taskId]);
      expect(rows[0].n).toBe(1);
    } finally {
      stub.behave({});
      await t.request('/api/queue/resume', { method: 'POST', token: admin });
    }
  });
});
