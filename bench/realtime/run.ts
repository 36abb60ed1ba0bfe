/**
 * Realtime latency: from the moment the ML stub sends a task's response to the moment a
 * socket.io-client connected to a *different* api process (B) than the one that enqueued (A) gets
 * `segmentation:completed`: the worker's result transaction in PostgreSQL, its Bull completion, the
 * Redis emitter publish and the Socket.IO delivery by api B. Baselines in the same run: Redis PING
 * round trip and raw Redis PUBLISH → SUBSCRIBE latency.
 *
 *   node dist/bench/realtime/run.js            # BENCH_TASKS=400, BENCH_RATE=25 tasks/s by default
 */
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { io, Socket } from 'socket.io-client';
import {
  benchEnv,
  f2,
  json,
  pct,
  REDIS_URL,
  register,
  runMain,
  seedImages,
  sleep,
  startBackend,
  startTimedStub,
  table,
  writeResults,
  invocation,
} from '../common/harness';
import { waitForQuiet } from '../common/probe';

const TASKS = Number(process.env.BENCH_TASKS ?? 400);
const WARMUP = 20;
const RATE = Number(process.env.BENCH_RATE ?? 25);
const LATENCY_MS = 50;
const SAMPLES = 2000;

async function redisBaselines() {
  const a = new Redis(REDIS_URL);
  const sub = new Redis(REDIS_URL);
  const channel = `bench_rt_ping_${process.pid}_${Date.now()}`;
  for (let i = 0; i < 200; i++) await a.ping(); // warm-up
  const ping: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    await a.ping();
    ping.push(performance.now() - t);
  }
  await sub.subscribe(channel);
  let resolve: (() => void) | undefined;
  sub.on('message', () => resolve?.());
  const pubsub: number[] = [];
  for (let i = 0; i < SAMPLES + 200; i++) {
    const got = new Promise<void>((r) => (resolve = r));
    const t = performance.now();
    void a.publish(channel, JSON.stringify({ i, taskId: '00000000-0000-0000-0000-000000000000', imageId: i }));
    await got;
    if (i >= 200) pubsub.push(performance.now() - t);
  }
  a.disconnect();
  sub.disconnect();
  return { ping, pubsub };
}

runMain(async () => {
  const env = benchEnv('rt');
  const queueName = env.queue('seg');
  const stub = await startTimedStub(LATENCY_MS);
  const common = { QUEUE_NAME: queueName, ML_SERVICE_URL: stub.url };
  const apiA = await startBackend(env, 'api', common, 'apiA');
  const [apiB, worker] = await Promise.all([
    startBackend(env, 'api', common, 'apiB'),
    startBackend(env, 'worker', { ...common, QUEUE_CONCURRENCY: '10' }, 'worker'),
  ]);
  const pg = await env.pg();
  const user = await register(apiA);
  const ids = await seedImages(apiA, env, pg, user.token, user.id, TASKS + WARMUP);

  const socket: Socket = io(apiB.url, { path: '/socket.io', auth: { token: user.token }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (e) => reject(e));
  });
  const completedAt = new Map<string, number>();
  socket.on('segmentation:completed', (p: { taskId: string }) => completedAt.set(p.taskId, performance.now()));

  const busy = await waitForQuiet();
  const taskIds: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < ids.length; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const t = await json<{ taskId: string }>(apiA.request(`/api/images/${ids[i]}/segmentation`, { json: {}, token: user.token }), 202);
    taskIds.push(t.taskId);
  }
  const deadline = performance.now() + 60_000;
  while (taskIds.some((id) => !completedAt.has(id)) && performance.now() < deadline) await sleep(20);
  socket.close();
  const measured = taskIds.slice(WARMUP);
  const e2e: number[] = [];
  let missing = 0;
  for (const id of measured) {
    const sent = stub.sentAt.get(id);
    const done = completedAt.get(id);
    if (sent === undefined || done === undefined) {
      missing++;
      continue;
    }
    e2e.push(done - sent);
  }
  for (const b of [apiA, apiB, worker]) await b.stop();

  const base = await redisBaselines();
  const row = (name: string, v: number[]) => [name, v.length, f2(pct(v, 50)), f2(pct(v, 99)), f2(Math.max(...v))];
  const t = table(
    ['what', 'n', 'p50 ms', 'p99 ms', 'max ms'],
    [
      row('ML response sent → `segmentation:completed` on api B (end to end)', e2e),
      row('baseline: Redis PING round trip', base.ping),
      row('baseline: Redis PUBLISH → SUBSCRIBE message', base.pubsub),
    ],
  );
  const ratio = `end-to-end p50 / PUBLISH→SUBSCRIBE p50 = ${f2(pct(e2e, 50) / pct(base.pubsub, 50))}; p99 / p99 = ${f2(pct(e2e, 99) / pct(base.pubsub, 99))}`;
  const body = [
    `1 worker (QUEUE_CONCURRENCY=10), api A enqueues (\`POST /api/images/:id/segmentation\`, paced at ${RATE} tasks/s), a socket.io-client (websocket transport) is connected to api B. ML stub (in the bench process) answers after ${LATENCY_MS} ms and records \`performance.now()\` when it sends each response; the client records arrival in the same process (same clock). ${measured.length} tasks measured after ${WARMUP} warm-up tasks; ${missing} without an event. Baselines: ${SAMPLES} sequential round trips each, ioredis on the same Redis.`,
    '',
    t,
    '',
    ratio + '.',
    '',
    `Machine load by others before the run: ${f2(busy)} busy cores.`,
  ].join('\n');
  console.log('\n' + body);
  writeResults('realtime', 'Realtime event latency', invocation(process.env.BENCH_BUILD), body);
});
