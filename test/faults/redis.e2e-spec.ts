import type { Client } from 'pg';
import { metricValue, BackendProcess } from '../support/processes';
import {
  enqueueBatch,
  FaultStack,
  report,
  sleep,
  startStack,
  statusOf,
  summarize,
  until,
  uploadMany,
  waitAllCompleted,
} from './harness';

/**
 * Redis loses its data or goes away under a running api + worker (real processes from the build, a
 * Redis and a PostgreSQL of their own). PostgreSQL is the record of every task: whatever Redis
 * forgets, the reconciler queues again, and every task ends completed with exactly one result.
 */
describe('faults: Redis flushed, restarted empty, down for 10 s', () => {
  let s: FaultStack;
  let db: string;
  let api: BackendProcess;
  let worker: BackendProcess;
  let token: string;
  let sql: Client;

  beforeAll(async () => {
    s = await startStack();
    db = s.newDatabase();
    api = await s.start('api', db, {}, 'api');
    worker = await s.start('worker', db, { QUEUE_CONCURRENCY: '2' }, 'worker');
    token = (await api.register()).token;
    sql = await s.sql(db);
  }, 90_000);
  afterAll(async () => {
    await s?.teardown();
  }, 60_000);
  beforeEach(() => s.stub.reset());

  const reconciled = async () => {
    let n = 0;
    for (const p of [api, worker]) {
      const res = await p.request('/api/metrics');
      n += metricValue(await res.text(), 'segmentation_jobs_total', { result: 'reconciled' });
    }
    return n;
  };
  const completedCount = async (ids: string[]) => (await summarize(sql, ids)).byStatus.completed ?? 0;

  it('FLUSHALL with 50 tasks queued: all 50 complete, each with exactly one result row', async () => {
    const before = await reconciled();
    s.stub.behave({ latencyMs: 150 }); // 2 at a time: ~4 s of work, so most are still waiting at the flush
    const images = await uploadMany(api, token, 50);
    const tasks = await enqueueBatch(api, token, images);
    expect(tasks).toHaveLength(50);
    await until('a few tasks completed', async () => (await completedCount(tasks)) >= 4, 20_000);
    await s.redis.flushAll();
    const atFlush = await completedCount(tasks);
    report('flushall', { completedAtFlush: atFlush });
    expect(atFlush).toBeLessThan(40); // the flush really took queued jobs away

    const end = await waitAllCompleted(sql, tasks, 60_000);
    expect(end.byStatus).toEqual({ completed: 50 });
    expect(end.notOneResult).toEqual([]);
    expect(await reconciled()).toBeGreaterThan(before); // recovered by the reconciler, not by luck
    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();
  }, 120_000);

  it('Redis restarted without persistence with 50 tasks queued: all 50 complete, each with exactly one result row', async () => {
    const before = await reconciled();
    s.stub.behave({ latencyMs: 150 });
    const images = await uploadMany(api, token, 50);
    const tasks = await enqueueBatch(api, token, images);
    await until('a few tasks completed', async () => (await completedCount(tasks)) >= 4, 20_000);
    await s.redis.stop();
    const atStop = await completedCount(tasks);
    await sleep(1000);
    await s.redis.start(); // same port, empty
    report('redis restart', { completedAtStop: atStop });
    expect(atStop).toBeLessThan(40);

    const end = await waitAllCompleted(sql, tasks, 60_000);
    expect(end.byStatus).toEqual({ completed: 50 });
    expect(end.notOneResult).toEqual([]);
    expect(await reconciled()).toBeGreaterThan(before);
    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();
  }, 120_000);

  it('Redis down for 10 s: ready 503 and live 200 meanwhile, a task posted then gets 202; after Redis returns it and new tasks complete without any restart', async () => {
    const [outageImage, afterImage] = await uploadMany(api, token, 2);
    await until(
      'ready 200 on both',
      async () =>
        (await statusOf(api, '/api/health/ready')) === 200 &&
        (await statusOf(worker, '/api/health/ready')) === 200,
      15_000,
    );

    await s.redis.stop();
    const downAt = Date.now();
    await until('api ready 503', async () => (await statusOf(api, '/api/health/ready')) === 503, 5000);
    await until('worker ready 503', async () => (await statusOf(worker, '/api/health/ready')) === 503, 5000);
    expect(await statusOf(api, '/api/health/live')).toBe(200);
    expect(await statusOf(worker, '/api/health/live')).toBe(200);

    const posted = await api.request(`/api/images/${outageImage}/segmentation`, {
      method: 'POST',
      token,
      json: {},
      timeoutMs: 10_000,
    });
    expect(posted.status).toBe(202);
    const outageTask = ((await posted.json()) as { taskId: string }).taskId;
    const row = await sql.query('SELECT status FROM queue_jobs WHERE task_id = $1', [outageTask]);
    expect(row.rows).toEqual([{ status: 'queued' }]);

    // Stay down for 10 s in all, checking liveness and readiness along the way.
    while (Date.now() - downAt < 10_000) {
      expect(await statusOf(api, '/api/health/live')).toBe(200);
      expect(await statusOf(worker, '/api/health/live')).toBe(200);
      expect(await statusOf(api, '/api/health/ready')).toBe(503);
      await sleep(500);
    }
    await s.redis.start();
    await until(
      'api ready 200 again',
      async () => (await statusOf(api, '/api/health/ready')) === 200,
      15_000,
    );
    await until(
      'worker ready 200 again',
      async () => (await statusOf(worker, '/api/health/ready')) === 200,
      15_000,
    );

    const res = await api.request(`/api/images/${afterImage}/segmentation`, {
      method: 'POST',
      token,
      json: {},
    });
    expect(res.status).toBe(202);
    const newTask = ((await res.json()) as { taskId: string }).taskId;

    const end = await waitAllCompleted(sql, [outageTask, newTask], 30_000);
    expect(end.byStatus).toEqual({ completed: 2 });
    expect(end.notOneResult).toEqual([]);
    // No process was restarted: the same worker consumed again.
    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();
    const calls = s.stub.calls.map((c) => (c.body as { task_id: string }).task_id);
    expect(calls).toEqual(expect.arrayContaining([outageTask, newTask]));
  }, 90_000);
});
