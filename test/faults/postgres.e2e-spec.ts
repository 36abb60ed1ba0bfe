import type { BackendProcess } from '../support/processes';
import {
  FaultStack,
  report,
  sleep,
  startStack,
  statusOf,
  until,
  uploadMany,
  waitAllCompleted,
} from './harness';

/**
 * PostgreSQL restarted under load, its connections exhausted, and the pool bound under a burst, on a
 * PostgreSQL and a Redis of their own with real processes from the build.
 */
describe('faults: PostgreSQL restart, exhausted pool, pool bound', () => {
  let s: FaultStack;

  beforeAll(async () => {
    s = await startStack();
  }, 60_000);
  afterAll(async () => {
    await s?.teardown();
  }, 60_000);
  beforeEach(() => s.stub.reset());

  interface Outcome {
    what: string;
    status: number; // 0: no answer (network error or timeout)
    error?: string;
    body?: unknown;
    retryAfter?: string | null;
    ms: number;
  }
  const timed = async (
    p: BackendProcess,
    what: string,
    path: string,
    init: Parameters<BackendProcess['request']>[1] = {},
  ): Promise<Outcome> => {
    const t0 = performance.now();
    try {
      const res = await p.request(path, { timeoutMs: 10_000, ...init });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* keep text */
      }
      return {
        what,
        status: res.status,
        body,
        retryAfter: res.headers.get('retry-after'),
        ms: performance.now() - t0,
      };
    } catch (err) {
      return { what, status: 0, error: (err as Error).message, ms: performance.now() - t0 };
    }
  };

  it('PostgreSQL stopped and started under a steady load of enqueues: no process exits, ready goes 503 then 200, the next request succeeds, every task completes', async () => {
    const db = s.newDatabase();
    const api = await s.start('api', db, { DATABASE_POOL_CONNECTION_TIMEOUT: '1000' }, 'api');
    const worker = await s.start(
      'worker',
      db,
      { QUEUE_CONCURRENCY: '3', DATABASE_POOL_CONNECTION_TIMEOUT: '1000' },
      'worker',
    );
    const { token } = await api.register();
    s.stub.behave({ latencyMs: 50 });
    const images = await uploadMany(api, token, 80);

    // One enqueue every ~100 ms, each bounded by a 10 s client timeout.
    const outcomes: Outcome[] = [];
    const accepted: string[] = [];
    let next = 0;
    let loadOn = true;
    const load = (async () => {
      while (loadOn && next < images.length - 1) {
        const o = await timed(api, 'enqueue', `/api/images/${images[next++]}/segmentation`, {
          method: 'POST',
          token,
          json: {},
        });
        outcomes.push(o);
        if (o.status === 202) accepted.push((o.body as { taskId: string }).taskId);
        await sleep(100);
      }
    })();

    await sleep(1500);
    expect(accepted.length).toBeGreaterThan(3);
    const readySeen: number[] = [];
    await s.pg.stop('fast');
    await until(
      'api ready 503 while PostgreSQL is down',
      async () => {
        const st = await statusOf(api, '/api/health/ready');
        readySeen.push(st);
        return st === 503;
      },
      10_000,
    );
    await until(
      'worker ready 503 while PostgreSQL is down',
      async () => (await statusOf(worker, '/api/health/ready')) === 503,
      10_000,
    );
    await sleep(1500);
    await s.pg.start();
    await until(
      'api ready 200 again',
      async () => (await statusOf(api, '/api/health/ready')) === 200,
      20_000,
    );
    await until(
      'worker ready 200 again',
      async () => (await statusOf(worker, '/api/health/ready')) === 200,
      20_000,
    );

    // The next request succeeds.
    const nextReq = await timed(api, 'after', `/api/images/${images[images.length - 1]}/segmentation`, {
      method: 'POST',
      token,
      json: {},
    });
    expect(nextReq.status).toBe(202);
    accepted.push((nextReq.body as { taskId: string }).taskId);
    await sleep(1500);
    loadOn = false;
    await load;

    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();
    // Every request answered; while the database was away with a 503 in the contract's shape, never a 500 or a hang.
    const bad = outcomes.filter(
      (o) =>
        !(
          o.status === 202 ||
          (o.status === 503 && o.retryAfter && (o.body as { statusCode?: number }).statusCode === 503)
        ),
    );
    if (bad.length) {
      // What the server logged for them (the error name and SQLSTATE code), to tell what slipped through.
      console.error(api.logs().split('\n').filter((l) => l.includes('request failed')).join('\n'));
    }
    expect(bad).toEqual([]);
    expect(outcomes.filter((o) => o.status === 202).length).toBeGreaterThan(10);
    expect(outcomes.filter((o) => o.status === 503).length).toBeGreaterThan(0); // the load really met the outage

    // A plain `pg_ctl restart -m fast` (too quick to observe readiness reliably): the very next
    // requests, sent without any health probe before them, succeed on the pool's fresh connections.
    await s.pg.restart('fast');
    const me = await timed(api, 'me', '/api/auth/me', { token });
    const list = await timed(api, 'tasks', '/api/segmentation/tasks', { token });
    expect([me.status, list.status]).toEqual([200, 200]);

    // Every task PostgreSQL knows (the 202 ones, and any whose request failed after its commit) completes once.
    const sql = await s.sql(db); // connected after the restart
    const all = (await sql.query<{ task_id: string }>('SELECT task_id FROM queue_jobs')).rows.map(
      (r) => r.task_id,
    );
    expect(all).toEqual(expect.arrayContaining(accepted));
    const end = await waitAllCompleted(sql, all, 60_000);
    expect(end.byStatus).toEqual({ completed: all.length });
    expect(end.notOneResult).toEqual([]);
    report('pg restart', {
      requests: outcomes.length,
      accepted202: outcomes.filter((o) => o.status === 202).length,
      refused503: outcomes.filter((o) => o.status === 503).length,
      tasks: all.length,
      maxMs: Math.round(Math.max(...outcomes.map((o) => o.ms))),
    });
    await Promise.all([api.stop(), worker.stop()]);
  }, 150_000);

  it('every pool connection held (DATABASE_POOL_MAX=3): further requests get 503 with Retry-After after about DATABASE_POOL_CONNECTION_TIMEOUT, never hang; after release everything is 200', async () => {
    const db = s.newDatabase();
    const api = await s.start(
      'api',
      db,
      { DATABASE_POOL_MAX: '3', DATABASE_POOL_CONNECTION_TIMEOUT: '500' },
      'api-pool3',
    );
    const { token } = await api.register();
    const sql = await s.sql(db);
    const holder = await s.sql(db);
    const lockWaiters = async () =>
      (
        await sql.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'spheroseg' AND wait_event_type = 'Lock'`,
        )
      ).rows[0].n;

    await holder.query('BEGIN');
    await holder.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
    const blocked: Array<Promise<Outcome>> = [];
    try {
      // Requests that need the users table (the auth guard reads the user) block holding a pool
      // connection each, until all 3 are taken.
      for (let i = 0; i < 10 && (await lockWaiters()) < 3; i++) {
        blocked.push(timed(api, 'blocked', '/api/auth/me', { token, timeoutMs: 20_000 }));
        await sleep(i < 3 ? 50 : 700);
      }
      await until('3 app connections waiting on the lock', async () => (await lockWaiters()) === 3, 5000);

      const extra = await Promise.all([
        ...Array.from({ length: 4 }, () => timed(api, 'me', '/api/auth/me', { token })),
        timed(api, 'tasks', '/api/segmentation/tasks', { token }),
      ]);
      report('pool held', { waitedMs: extra.map((o) => Math.round(o.ms)), retryAfter: extra[0].retryAfter });
      for (const o of extra) {
        expect(o).toMatchObject({ status: 503, body: { statusCode: 503, error: 'Service Unavailable' } });
        expect(typeof (o.body as { message: unknown }).message).toBe('string');
        expect(Number(o.retryAfter)).toBeGreaterThan(0);
        expect(o.ms).toBeGreaterThan(400); // it waited for a connection...
        expect(o.ms).toBeLessThan(5000); // ...about DATABASE_POOL_CONNECTION_TIMEOUT, not forever
      }
    } finally {
      await holder.query('COMMIT');
    }
    const first = await Promise.all(blocked);
    expect(first.filter((o) => o.status === 200).length).toBeGreaterThanOrEqual(3);
    expect(first.filter((o) => o.status !== 200 && o.status !== 503)).toEqual([]);

    const after = await Promise.all(
      Array.from({ length: 10 }, () => timed(api, 'after', '/api/auth/me', { token })),
    );
    expect(after.map((o) => o.status)).toEqual(Array(10).fill(200));
    expect(await statusOf(api, '/api/health/ready')).toBe(200);
    await api.stop();
  }, 90_000);

  it('200 concurrent requests on one api process with DATABASE_POOL_MAX=5: never more than 5 PostgreSQL connections, all 200 answered 200', async () => {
    const db = s.newDatabase();
    // A long acquire timeout: this case is about the bound, not about refusing the burst.
    const api = await s.start(
      'api',
      db,
      { DATABASE_POOL_MAX: '5', DATABASE_POOL_CONNECTION_TIMEOUT: '20000' },
      'api-pool5',
    );
    const { token } = await api.register();
    const sampler = await s.sql(db);
    const samples: number[] = [];
    let sampling = true;
    const sampleLoop = (async () => {
      while (sampling) {
        const r = await sampler.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'spheroseg'",
        );
        samples.push(r.rows[0].n);
        await sleep(20);
      }
    })();
    await sleep(100);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        timed(api, 'burst', i % 2 ? '/api/segmentation/tasks' : '/api/auth/me', { token, timeoutMs: 30_000 }),
      ),
    );
    await sleep(100);
    sampling = false;
    await sampleLoop;

    expect(results.filter((o) => o.status !== 200)).toEqual([]);
    report('pool bound', {
      samples: samples.length,
      maxConnections: Math.max(...samples),
      slowestMs: Math.round(Math.max(...results.map((o) => o.ms))),
    });
    expect(samples.length).toBeGreaterThan(5);
    expect(Math.max(...samples)).toBeGreaterThan(0);
    expect(Math.max(...samples)).toBeLessThanOrEqual(5);
    await api.stop();
  }, 90_000);
});
