import type { Client } from 'pg';
import { MlStub } from '../support/ml-stub';
import { freeLoopbackPort, PgInstance, startPostgres } from '../support/pg-instance';
import { BackendProcess, startProcesses, stopAllProcesses } from '../support/processes';
import { redisCli, RedisClusterTopology, startRedisCluster } from '../support/topologies';
import {
  backendEnv,
  connectSocket,
  Received,
  sqlClient,
  statusOf,
  uniqueName,
  until,
  uploadAndEnqueue,
  waitAllCompleted,
} from './helpers';

/**
 * REDIS_CLUSTER_NODES: api #1 + api #2 + worker (real processes from the build) on a 3-master Redis
 * Cluster, REDIS_URL pointing at a closed port (only its credentials would be used). Tasks enqueued
 * through api #1 complete; their events reach a socket on api #2; the rate limit is one budget across
 * both api processes; every Bull key of the deployment lives in the one slot of `{QUEUE_NAME}`.
 */
describe('topology: Redis Cluster (3 masters)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  const queue = uniqueName('topo_cluster');
  let cluster: RedisClusterTopology;
  let pg: PgInstance;
  let sql: Client;
  let api1: BackendProcess;
  let api2: BackendProcess;
  let worker: BackendProcess;
  const sockets: Array<{ disconnect(): unknown }> = [];

  beforeAll(async () => {
    [cluster, pg] = await Promise.all([startRedisCluster(3), startPostgres(), stub.start()]);
    const db = uniqueName('topo_cluster');
    const env = backendEnv(stub, {
      DATABASE_URL: pg.urlFor(db),
      REDIS_URL: `redis://127.0.0.1:${await freeLoopbackPort()}`, // nothing listens there
      REDIS_CLUSTER_NODES: cluster.nodes,
      QUEUE_NAME: queue,
      RATE_LIMIT_PER_MINUTE: '5',
    });
    // One process first: it creates the database and runs the migrations.
    [api1] = await startProcesses([{ role: 'api', name: 'api#1', env, liveTimeoutMs: 45_000 }]);
    [api2, worker] = await startProcesses([
      { role: 'api', name: 'api#2', env, liveTimeoutMs: 45_000 },
      { role: 'worker', name: 'worker', env: { ...env, QUEUE_CONCURRENCY: '2' }, liveTimeoutMs: 45_000 },
    ]);
    sql = await sqlClient(pg.urlFor(db));
  }, 120_000);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await stopAllProcesses(10_000).catch(() => undefined);
    await sql?.end().catch(() => undefined);
    await stub.stop();
    await Promise.allSettled([cluster?.destroy(), pg?.destroy()]);
  }, 60_000);

  it('is ready on every process', async () => {
    for (const p of [api1, api2, worker]) {
      await until(
        `${p.name} ready`,
        async () => (await statusOf(p, '/api/health/ready')) === 200,
        15_000,
        200,
      );
    }
    for (const service of ['redis', 'queue']) {
      const res = await api1.request(`/api/health/services/${service}`);
      expect({
        service,
        status: res.status,
        body: ((await res.json()) as { status: string }).status,
      }).toEqual({ service, status: 200, body: 'healthy' });
    }
  });

  it('tasks enqueued through api #1 complete, and a socket on api #2 receives segmentation:completed for each', async () => {
    stub.behave({ latencyMs: 100 });
    // Per-user budget is 5 requests/minute: register is anonymous, then 3 uploads + 1 batch.
    const { token } = await api1.register();
    const watcher = await connectSocket(api2, token);
    sockets.push(watcher.socket);

    const tasks = await uploadAndEnqueue(api1, token, 3);
    const end = await waitAllCompleted(sql, tasks, 30_000);
    expect(end.byStatus).toEqual({ completed: 3 });
    expect(end.notOneResult).toEqual([]);

    const completedFor = (events: Received[]) =>
      new Set(events.filter((e) => e.event === 'segmentation:completed').map((e) => e.payload.taskId));
    await until(
      'segmentation:completed on api #2 for every task',
      () => tasks.every((t) => completedFor(watcher.events).has(t)),
      10_000,
    );
    expect([...completedFor(watcher.events)].sort()).toEqual([...tasks].sort());
    expect(stub.calls.length).toBeGreaterThanOrEqual(3);
  }, 60_000);

  it('every Bull key of the deployment is in the one slot of {QUEUE_NAME} (checked with redis-cli -c)', async () => {
    const tagSlot = await cluster.keySlot(`{${queue}}`);
    const keys = await cluster.keys(`{${queue}}:*`);
    // The lists/zsets/job hashes of the band queues (segmentation-p1..p10) and the dead-letter queue.
    expect(keys.some((k) => /^\{[^}]+\}:segmentation-p\d+:/.test(k))).toBe(true);
    // QUEUE_FAIRNESS=user (default): the tasks went through the user lists, whose count key remains.
    expect(keys.some((k) => /^\{[^}]+\}:segmentation-p\d+:fair:n$/.test(k))).toBe(true);
    expect(keys.length).toBeGreaterThan(3);
    const slots = new Set<number>();
    for (const k of keys) slots.add(await cluster.keySlot(k));
    expect([...slots]).toEqual([tagSlot]);
    // The keys are all on one master, and `redis-cli -c` reaches them from any node.
    const perNode: number[] = [];
    for (const port of cluster.ports) {
      const out = await redisCli([
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '--scan',
        '--pattern',
        `{${queue}}:*`,
      ]);
      perNode.push(out.split('\n').filter(Boolean).length);
    }
    expect(perNode.filter((n) => n > 0)).toHaveLength(1);
    // The tasks completed above left their jobs in the completed set of one of the band queues (via redis-cli -c).
    const completedKeys = Array.from({ length: 10 }, (_, i) => `{${queue}}:segmentation-p${i + 1}:completed`);
    expect(Number((await cluster.cli('EXISTS', ...completedKeys)).trim())).toBeGreaterThanOrEqual(1);
    // Bull's keys are not scattered anywhere else either: no key without the hash tag mentions the queue's Bull names.
    const stray = (await cluster.keys(`*${queue}*`)).filter(
      (k) => !k.startsWith(`{${queue}}:`) && /:segmentation(-p\d+|-dead-letter):/.test(k),
    );
    expect(stray).toEqual([]);
  });

  it('shares the rate limit across both api processes: the 6th request within a minute is 429', async () => {
    const { token } = await api2.register();
    const statuses: number[] = [];
    const order = [api1, api2, api1, api2, api1, api2];
    for (const p of order) {
      const res = await p.request('/api/segmentation/tasks', { token });
      await res.body?.cancel();
      statuses.push(res.status);
    }
    // A per-process limiter would have let all 6 through (3 on each process).
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const more = await api1.request('/api/segmentation/tasks', { token });
    expect(more.status).toBe(429);
    // The counter is in the cluster, under the deployment's prefix.
    expect((await cluster.keys(`${queue}:rl:*`)).length).toBeGreaterThan(0);
  });
});
