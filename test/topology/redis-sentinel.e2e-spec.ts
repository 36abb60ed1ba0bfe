import type { Client } from 'pg';
import { MlStub } from '../support/ml-stub';
import { freeLoopbackPort, PgInstance, startPostgres } from '../support/pg-instance';
import { BackendProcess, metricValue, startProcesses, stopAllProcesses } from '../support/processes';
import { RedisSentinelTopology, startRedisSentinel } from '../support/topologies';
import {
  backendEnv,
  sqlClient,
  statusOf,
  summarize,
  uniqueName,
  until,
  uploadAndEnqueue,
  waitAllCompleted,
} from './helpers';

/**
 * REDIS_SENTINELS / REDIS_SENTINEL_NAME: an api and a worker (real processes from the build) find the
 * Redis primary through 3 sentinels. The primary is shut down with tasks queued and in flight; Sentinel
 * promotes the replica; without restarting any process, new tasks are accepted (202) and every task,
 * old and new, completes with exactly one result (what the old primary had not replicated is the
 * reconciler's: short RECONCILE_INTERVAL_MS / RECONCILE_GRACE_MS here).
 */
describe('topology: Redis Sentinel failover (primary + replica + 3 sentinels)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let s: RedisSentinelTopology;
  let pg: PgInstance;
  let sql: Client;
  let api: BackendProcess;
  let worker: BackendProcess;
  let token: string;

  beforeAll(async () => {
    [s, pg] = await Promise.all([startRedisSentinel(uniqueName('spheroseg')), startPostgres(), stub.start()]);
    const db = uniqueName('topo_sentinel');
    const env = backendEnv(stub, {
      DATABASE_URL: pg.urlFor(db),
      REDIS_URL: `redis://127.0.0.1:${await freeLoopbackPort()}`, // nothing listens there: the sentinels decide
      REDIS_SENTINELS: s.sentinels,
      REDIS_SENTINEL_NAME: s.name,
      QUEUE_NAME: uniqueName('topo_sentinel'),
      RECONCILE_INTERVAL_MS: '1000',
      RECONCILE_GRACE_MS: '3000',
      QUEUE_MAX_ATTEMPTS: '10',
    });
    [api] = await startProcesses([{ role: 'api', name: 'api', env, liveTimeoutMs: 45_000 }]);
    [worker] = await startProcesses([
      { role: 'worker', name: 'worker', env: { ...env, QUEUE_CONCURRENCY: '2' }, liveTimeoutMs: 45_000 },
    ]);
    sql = await sqlClient(pg.urlFor(db));
    token = (await api.register()).token;
  }, 120_000);

  afterAll(async () => {
    await stopAllProcesses(10_000).catch(() => undefined);
    await sql?.end().catch(() => undefined);
    await stub.stop();
    await Promise.allSettled([s?.destroy(), pg?.destroy()]);
  }, 60_000);

  const connectedClients = async (port: number) => {
    const out = await s.cli(port, 'INFO', 'clients');
    return Number(/connected_clients:(\d+)/.exec(out)?.[1] ?? 0);
  };

  it('accepts and completes tasks through the primary the sentinels name', async () => {
    for (const p of [api, worker]) {
      await until(
        `${p.name} ready`,
        async () => (await statusOf(p, '/api/health/ready')) === 200,
        15_000,
        200,
      );
    }
    stub.behave({ latencyMs: 50 });
    const tasks = await uploadAndEnqueue(api, token, 3);
    const end = await waitAllCompleted(sql, tasks, 30_000);
    expect(end.byStatus).toEqual({ completed: 3 });
    expect(end.notOneResult).toEqual([]);
    expect(await s.currentMasterPort()).toBe(s.primaryPort);
    // The processes' clients are on the primary (the replica only has its link to it and none of ours).
    expect(await connectedClients(s.primaryPort)).toBeGreaterThanOrEqual(6);
  }, 60_000);

  it('primary shut down with tasks queued and in flight: replica promoted, no process restarted, new tasks get 202, every task completes once', async () => {
    stub.behave({ latencyMs: 300 }); // 2 at a time: ~3 s of work for 20 tasks, so most are queued at the stop
    const before = await uploadAndEnqueue(api, token, 20);
    await until(
      'a task in flight',
      async () => ((await summarize(sql, before)).byStatus.processing ?? 0) > 0,
      10_000,
      50,
    );

    const stoppedAt = Date.now();
    await s.stopPrimary();
    const atStop = await summarize(sql, before);
    expect(atStop.byStatus.completed ?? 0).toBeLessThan(20); // the failover really happens under load
    await s.waitForPromotion(30_000);
    const promotedAfterMs = Date.now() - stoppedAt;

    // No restart: the same processes, still running.
    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();

    // New tasks are accepted at once after the promotion (202), and both processes become ready again.
    stub.behave({ latencyMs: 50 });
    const after = await uploadAndEnqueue(api, token, 5);
    expect(after).toHaveLength(5);
    for (const p of [api, worker]) {
      await until(
        `${p.name} ready after failover`,
        async () => (await statusOf(p, '/api/health/ready')) === 200,
        20_000,
        200,
      );
    }

    const all = [...before, ...after];
    const end = await waitAllCompleted(sql, all, 60_000);
    expect(end.byStatus).toEqual({ completed: 25 });
    expect(end.notOneResult).toEqual([]);
    // The processes now talk to the promoted replica.
    expect(await connectedClients(s.replicaPort)).toBeGreaterThanOrEqual(6);
    expect(api.exitInfo()).toBeUndefined();
    expect(worker.exitInfo()).toBeUndefined();

    let reconciled = 0;
    for (const p of [api, worker])
      reconciled += metricValue(await (await p.request('/api/metrics')).text(), 'segmentation_jobs_total', {
        result: 'reconciled',
      });
    // Recorded for the report; the assertion is "none lost", whichever path recovered them.
    console.log(
      `sentinel failover: promoted after ${promotedAfterMs} ms, reconciled ${reconciled} task(s), ${Date.now() - stoppedAt} ms until all 25 completed`,
    );
  }, 120_000);
});
