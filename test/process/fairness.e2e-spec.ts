import Redis from 'ioredis';
import { Client } from 'pg';
import { PRIORITY_BANDS, bandQueueName } from '../../src/queue/queue.constants';
import { makePng, TaskBody, uploadImage } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import { BackendProcess, startProcess, stopAllProcesses } from '../support/processes';

/**
 * QUEUE_FAIRNESS on real processes from the build: one api, two worker processes with 2 slots each (and
 * their look-ahead), the ML stub recording the order calls arrive in. Tasks are queued before the workers
 * start, so the order is the queue's and not the order requests came in.
 */
const WORKERS = 2;
const CONCURRENCY = 2;
const SLOTS = WORKERS * CONCURRENCY;

type Label = { user: string; n: number };

describe('fair turns between users (real processes from the build)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let png: Buffer;
  let db: Client;
  let redis: Redis;
  beforeAll(async () => {
    png = await makePng();
    await stub.start();
    db = new Client({ connectionString: process.env.DATABASE_URL });
    await db.connect();
    redis = new Redis(process.env.REDIS_URL!);
  });
  afterAll(async () => {
    await stopAllProcesses();
    await stub.stop();
    await db?.end();
    redis?.disconnect();
  });
  afterEach(() => stopAllProcesses());

  /** One scenario on a queue of its own: `users` queue their tasks in turn, then the workers start. */
  const scenario = async (tag: string, fairness: 'user' | 'none', users: Array<{ name: string; count: number; priority: number }>, extra: Record<string, string> = {}, latencyMs = 60) => {
    stub.reset();
    stub.behave({ latencyMs });
    const env = { QUEUE_NAME: `${process.env.QUEUE_NAME}_fair_${tag}`, QUEUE_FAIRNESS: fairness, ML_SERVICE_URL: stub.url, ML_BREAKER_VOLUME_THRESHOLD: '1000', ...extra };
    const api = await startProcess({ role: 'api', env });
    const labels = new Map<string, Label>();
    const tasks: TaskBody[] = [];
    for (const u of users) {
      const { token } = await api.register();
      const ids: number[] = [];
      for (let i = 0; i < u.count; i++) ids.push(await uploadImage(api, token, png));
      const res = await api.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: ids, priority: u.priority }, timeoutMs: 20_000 });
      expect(res.status).toBe(202);
      const body = (await res.json()) as { tasks: TaskBody[] };
      body.tasks.forEach((t, i) => labels.set(t.taskId, { user: u.name, n: i + 1 }));
      tasks.push(...body.tasks);
    }
    const workers: BackendProcess[] = await Promise.all(
      Array.from({ length: WORKERS }, (_, i) => startProcess({ role: 'worker', name: `worker-${tag}-${i}`, env: { ...env, QUEUE_CONCURRENCY: String(CONCURRENCY), ...extra } })),
    );
    const order = () => stub.calls.map((c) => labels.get((c.body as { task_id: string }).task_id)!).filter(Boolean);
    return { api, env, workers, tasks, labels, order };
  };

  /** Largest distance between where a user's k-th call is and where it would be in first in, first out. */
  const displacement = (calls: Label[], user: string) =>
    Math.max(...calls.filter((c) => c.user === user).map((c, i) => Math.abs(c.n - (i + 1))));

  const finishAll = async (s: Awaited<ReturnType<typeof scenario>>, total: number) => {
    await stub.waitForCalls(total, 60_000);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM queue_jobs WHERE task_id = ANY($1::uuid[]) AND status = 'completed'", [s.tasks.map((t) => t.taskId)]);
      if (r.rows[0].n === total) break;
      if (Date.now() > deadline) throw new Error(`only ${r.rows[0].n} of ${total} tasks completed`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it("user: A's 40 then B's 4 and a more urgent user's 2 — the urgent first, B's within the first 10 calls after them, FIFO per user", async () => {
    const s = await scenario('turns', 'user', [
      { name: 'A', count: 40, priority: 1 },
      { name: 'B', count: 4, priority: 1 },
      { name: 'C', count: 2, priority: 5 },
    ]);
    await finishAll(s, 46);
    const calls = s.order();
    expect(calls).toHaveLength(46);
    // The more urgent user's tasks are taken first: both among the first calls the slots make.
    const cAt = calls.flatMap((c, i) => (c.user === 'C' ? [i] : []));
    expect(Math.max(...cAt)).toBeLessThan(SLOTS);
    const normal = calls.filter((c) => c.user !== 'C');
    const bAt = normal.flatMap((c, i) => (c.user === 'B' ? [i + 1] : []));
    expect(bAt).toHaveLength(4);
    expect(Math.max(...bAt)).toBeLessThanOrEqual(10); // strict turns: positions 2, 4, 6, 8 give or take the slots' overlap
    // First in, first out within a user, up to the jobs the slots hold at once (one running and one
    // fetched ahead each): the exact order at the pop is tested in band-consumer-fairness.e2e-spec.ts.
    expect(displacement(calls, 'A')).toBeLessThanOrEqual(2 * SLOTS);
    expect(displacement(calls, 'B')).toBeLessThanOrEqual(2 * SLOTS);
  });

  it("none: first in, first out within a priority — B's 4 tasks wait behind A's 40", async () => {
    const s = await scenario('none', 'none', [
      { name: 'A', count: 40, priority: 1 },
      { name: 'B', count: 4, priority: 1 },
    ]);
    await finishAll(s, 44);
    const calls = s.order();
    const bAt = calls.flatMap((c, i) => (c.user === 'B' ? [i + 1] : []));
    expect(Math.min(...bAt)).toBeGreaterThan(40 - 2 * SLOTS);
    expect(displacement(calls, 'A')).toBeLessThanOrEqual(2 * SLOTS);
  });

  it('user: a worker killed mid-job with SIGKILL — no task lost, none run twice to completion, the user lists end empty', async () => {
    const fast = { QUEUE_LOCK_DURATION: '2000', QUEUE_STALLED_INTERVAL: '1000' };
    const s = await scenario(
      'kill',
      'user',
      [
        { name: 'A', count: 12, priority: 1 },
        { name: 'B', count: 6, priority: 1 },
      ],
      fast,
      400,
    );
    await stub.waitForCalls(3, 30_000);
    expect(s.workers[0].kill('SIGKILL')).toBe(true);
    await s.workers[0].waitExit(5000);
    await startProcess({ role: 'worker', name: 'worker-kill-again', env: { ...s.env, QUEUE_CONCURRENCY: String(CONCURRENCY) } });
    for (const t of s.tasks) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = await db.query<{ status: string }>('SELECT status FROM queue_jobs WHERE task_id = $1', [t.taskId]);
        if (r.rows[0]?.status === 'completed') break;
        if (Date.now() > deadline) throw new Error(`task ${t.taskId} not completed: ${r.rows[0]?.status}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    await new Promise((r) => setTimeout(r, 1000)); // a late answer to a dead worker's call must add nothing
    const results = await db.query<{ task_id: string; n: number }>(
      'SELECT task_id, count(*)::int AS n FROM segmentation_results WHERE task_id = ANY($1::uuid[]) GROUP BY task_id',
      [s.tasks.map((t) => t.taskId)],
    );
    expect(results.rows).toHaveLength(18);
    expect(results.rows.every((r) => r.n === 1)).toBe(true);
    // Every task reached the ML service; only those the dead worker had taken may have been called twice.
    const perTask = s.tasks.map((t) => stub.calls.filter((c) => (c.body as { task_id: string }).task_id === t.taskId).length);
    expect(perTask.every((n) => n >= 1)).toBe(true);
    expect(perTask.filter((n) => n > 1).length).toBeLessThanOrEqual(2 * CONCURRENCY);
    // Nothing left behind in Redis: no job in a user list, no user in the turns, nothing active.
    const prefix = `{${s.env.QUEUE_NAME}}`;
    for (const b of PRIORITY_BANDS) {
      const base = `${prefix}:${bandQueueName(b)}:`;
      expect({ b, n: Number((await redis.get(`${base}fair:n`)) ?? 0), ring: await redis.llen(`${base}fair:ring`), active: await redis.llen(`${base}active`) }).toEqual({
        b,
        n: 0,
        ring: 0,
        active: 0,
      });
    }
  });
});
