/**
 * API request cost, in the user's setting: NODE_ENV=production, LOG_LEVEL=info, one `api` process
 * with a Socket.IO client subscribed (receiving the user's events), two `worker` processes
 * (QUEUE_CONCURRENCY=10), DATABASE_POOL_MAX=10, PostgreSQL and Redis on the same cores. Side by side
 * in one run, autocannon with 50 connections:
 *  - a bare NestJS-on-Fastify one-route app (bench/api/bare-app.ts) vs `GET /api/health/live`, alternating
 *    in BENCH_API_ROUNDS (3) slices each, so that the host's drift during the run falls on both;
 *  - `GET /api/segmentation/tasks/:id` vs `/live`;
 *  - `POST /api/images/:id/segmentation` (distinct images of one user) vs the smallest transaction an
 *    enqueue must make (BEGIN; INSERT a task row; UPDATE its image row; COMMIT) through a `pg` Pool of
 *    the same size, 50 callers, same PostgreSQL;
 *  - CPU per request by process (from /proc) and the api's RSS under load.
 *
 *   node dist/bench/api/run.js          (BENCH_API_SECONDS per phase, default 6; BENCH_CPU_PROF=1 adds a profile of the api)
 */
import { ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { Pool } from 'pg';
import { io, Socket } from 'socket.io-client';
import { freeLoopbackPort } from '../../test/support/pg-instance';
import {
  adminToken,
  Backend,
  benchEnv,
  f1,
  f2,
  f3,
  invocation,
  json,
  register,
  runMain,
  seedImages,
  sleep,
  startBackend,
  startTimedStub,
  table,
  writeResults,
} from '../common/harness';
import { cpuDelta, cpuSnapshot, summariseCpuProfile, waitForQuiet } from '../common/probe';

const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 6);
const CONNECTIONS = 50;
const POOL = 10;
const ENQ_IMAGES = Number(process.env.BENCH_API_IMAGES ?? 40_000);
/** Enqueues of the warm-up (one per image of a third user) before the measured phases. */
const ENQ_WARMUP_IMAGES = Number(process.env.BENCH_API_ENQ_WARMUP ?? 4_000);
const PROFILE = process.env.BENCH_CPU_PROF === '1';
/** Alternating slices of the bare app and /live (BENCH_API_ROUNDS, 3 by default), summed. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_API_ROUNDS ?? 3));
/** Comma list of phases to run (bare,live,tasks,pg,enqueue); all by default (profiling one phase). */
const ONLY = (process.env.BENCH_API_PHASES ?? 'bare,live,tasks,pg,enqueue').split(',');
const MB = 1024 * 1024;

interface Phase {
  name: string;
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
  errors: string;
  cpu: Array<[string, number]>;
  /** Peak api RSS during the phase (bytes). */
  rss: number;
}

async function startBare(): Promise<{ url: string; pid: number; child: ChildProcess }> {
  const port = await freeLoopbackPort();
  const child = fork(path.join(__dirname, 'bare-app.js'), [], {
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', PORT: String(port), ...(process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (c) => reject(new Error(`bare app exited ${c}`)));
  });
  process.once('exit', () => child.kill('SIGKILL'));
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, child };
}

/** Peak VmRSS of `b` until `stop()`, sampled every 200 ms; `phase.peak` is the peak since the phase's own reset. */
async function peakRss(b: Backend, stop: () => boolean, phase: { peak: number }): Promise<number> {
  let peak = 0;
  while (!stop()) {
    const rss = await b.rss().catch(() => 0);
    peak = Math.max(peak, rss);
    phase.peak = Math.max(phase.peak, rss);
    await sleep(200);
  }
  return peak;
}

runMain(async () => {
  const env = benchEnv('api');
  const stub = await startTimedStub(50);
  const Q = env.queue('q');
  const profDir = mkdtempSync(path.join(os.tmpdir(), 'bench-api-prof-'));
  const common = { QUEUE_NAME: Q, ML_SERVICE_URL: stub.url, LOG_LEVEL: 'info', DATABASE_POOL_MAX: String(POOL) };
  // BENCH_API_NODE_ARGS: extra node flags for the api (e.g. a heap cap, to see what RSS is garbage).
  const extraArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const api = await startBackend(env, 'api', common, 'api', [...extraArgs, ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])]);
  const workers = await Promise.all([
    startBackend(env, 'worker', { ...common, QUEUE_CONCURRENCY: '10' }, 'worker1'),
    startBackend(env, 'worker', { ...common, QUEUE_CONCURRENCY: '10' }, 'worker2'),
  ]);
  const bare = await startBare();
  const admin = await adminToken(api, env);
  await json(api.request('/api/queue/pause', { method: 'POST', token: admin }), 200);
  const pg = await env.pg();
  const user = await register(api);
  const [one] = await seedImages(api, env, pg, user.token, user.id, 1);
  const task = await json<{ taskId: string }>(api.request(`/api/images/${one}/segmentation`, { token: user.token, json: {} }), 202);
  // Enqueue targets: image rows only (the queue stays paused, no worker reads their files).
  const ins = async (userId: number, n: number) =>
    (
      await pg.query<{ id: number }>(
        `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
         SELECT $1::int, 'b.png', 'bench/' || $1::int || '/' || g || '.png', 'image/png', 100, 64, 48 FROM generate_series(1, $2::int) g RETURNING id`,
        [userId, n],
      )
    ).rows.map((r) => r.id);
  const enqIds = await ins(user.id, ENQ_IMAGES);
  const base = await register(api);
  const baseIds = await ins(base.id, ENQ_IMAGES);
  // A third user's images for the enqueue warm-up, so the measured user's counts are the phase's own.
  const warm = await register(api);
  const warmIds = await ins(warm.id, ENQ_WARMUP_IMAGES);

  // The user's Socket.IO client, subscribed to every event it is sent.
  let events = 0;
  const socket: Socket = io(api.url, { path: '/socket.io', auth: { token: user.token }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (e) => reject(e));
  });
  socket.onAny(() => events++);

  const busy = await waitForQuiet();
  console.log(`api bench: up (machine busy ${f2(busy)} cores before)`);
  const pids = { api: api.pid, worker1: workers[0].pid, worker2: workers[1].pid, bare: bare.pid, 'bench (load generator)': process.pid };
  const idleRss = await api.rss();
  let loadDone = false;
  const phaseRss = { peak: 0 };
  const rssPeak = peakRss(api, () => loadDone, phaseRss);
  const phases: Phase[] = [];

  const skipped = (name: string): Phase => ({ name, requests: NaN, seconds: 1, p50: NaN, p99: NaN, errors: 'not run', cpu: [], rss: NaN });
  const cannon = async (key: string, name: string, opts: autocannon.Options): Promise<Phase> => {
    if (!ONLY.includes(key)) return skipped(name);
    const a = cpuSnapshot(pids);
    phaseRss.peak = 0;
    const r = await autocannon({ connections: CONNECTIONS, duration: SECONDS, ...opts });
    const b = cpuSnapshot(pids);
    const codes = Object.entries((r as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {})
      .map(([c, v]) => `${c}×${v.count}`)
      .join(' ');
    const p: Phase = { name, requests: r.requests.total, seconds: r.duration, p50: r.latency.p50, p99: r.latency.p99, errors: `${codes}${r.errors ? ` errors×${r.errors}` : ''}`, cpu: cpuDelta(a, b), rss: phaseRss.peak };
    phases.push(p);
    console.log(`${name}: ${f1(p.requests / p.seconds)} req/s, p99 ${p.p99} ms (${p.errors})`);
    return p;
  };

  // Warm-up (JIT, pools, prepared statements), not reported.
  await autocannon({ url: `${bare.url}/hello`, connections: CONNECTIONS, duration: 1 });
  await autocannon({ url: `${api.url}/api/health/live`, connections: CONNECTIONS, duration: 1 });
  await autocannon({ url: `${api.url}/api/segmentation/tasks/${task.taskId}`, connections: CONNECTIONS, duration: 1, headers: { authorization: `Bearer ${user.token}` } });
  // The enqueue path is longer and its functions reach TurboFan later (finding 15): a few thousand
  // enqueues, of the warm-up user's own images, before anything is measured.
  let warmNext = 0;
  await autocannon({
    url: api.url,
    connections: CONNECTIONS,
    amount: ENQ_WARMUP_IMAGES,
    headers: { authorization: `Bearer ${warm.token}`, 'content-type': 'application/json' },
    requests: [{ method: 'POST', body: '{}', setupRequest: (req) => ({ ...req, path: `/api/images/${warmIds[warmNext++ % warmIds.length]}/segmentation` }) }],
  });

  // The bare app and /live alternate in ROUNDS slices, so that the host's drift over the run (up to
  // 30 % here) falls on both sides of their ratio instead of on one phase.
  const merge = (parts: Phase[]): Phase => {
    const cpu = new Map<string, number>();
    for (const q of parts) for (const [k, v] of q.cpu) cpu.set(k, (cpu.get(k) ?? 0) + v);
    return {
      name: parts[0].name,
      requests: parts.reduce((n, q) => n + q.requests, 0),
      seconds: parts.reduce((n, q) => n + q.seconds, 0),
      p50: Math.max(...parts.map((q) => q.p50)),
      p99: Math.max(...parts.map((q) => q.p99)),
      errors: parts.map((q) => q.errors).join(' · '),
      cpu: [...cpu],
      rss: Math.max(...parts.map((q) => q.rss)),
    };
  };
  // The task read takes its slices in the same rounds: its goal is a ratio to /live, and measured after
  // them it took the host's drift alone (0.28-0.48 of /live across this week's runs).
  const bareParts: Phase[] = [];
  const liveParts: Phase[] = [];
  const taskParts: Phase[] = [];
  const slicesAt = phases.length;
  for (let r = 0; r < ROUNDS; r++) {
    bareParts.push(await cannon('bare', 'bare NestJS+Fastify GET /hello', { url: `${bare.url}/hello`, duration: SECONDS / ROUNDS }));
    liveParts.push(await cannon('live', 'GET /api/health/live', { url: `${api.url}/api/health/live`, duration: SECONDS / ROUNDS }));
    taskParts.push(
      await cannon('tasks', 'GET /api/segmentation/tasks/:id', {
        url: `${api.url}/api/segmentation/tasks/${task.taskId}`,
        headers: { authorization: `Bearer ${user.token}` },
        duration: SECONDS / ROUNDS,
      }),
    );
  }
  phases.splice(slicesAt);
  const bareP = merge(bareParts);
  const liveP = merge(liveParts);
  const taskP = merge(taskParts);
  phases.push(bareP, liveP, taskP);

  // pg baseline: the smallest enqueue transaction, 50 callers over a Pool of the same size.
  const pool = new Pool({ connectionString: env.databaseUrl, max: POOL, application_name: 'bench-pg-baseline' });
  pool.on('error', () => undefined); // connections terminated by the cleanup's DROP DATABASE
  let bi = 0;
  const lat: number[] = [];
  const a0 = cpuSnapshot(pids);
  phaseRss.peak = 0;
  const t0 = performance.now();
  if (ONLY.includes('pg')) await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() - t0 < SECONDS * 1000 && bi < baseIds.length) {
        const img = baseIds[bi++];
        const s = performance.now();
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          const id = randomUUID();
          await c.query(`INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority) VALUES ($1, $2, $3, $4, 'queued', 1)`, [id, id, img, base.id]);
          await c.query(`UPDATE images SET segmentation_status = 'queued', updated_at = now() WHERE id = $1`, [img]);
          await c.query('COMMIT');
        } finally {
          c.release();
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const pgSeconds = ONLY.includes('pg') ? (performance.now() - t0) / 1000 : 1;
  lat.sort((x, y) => x - y);
  const pgP: Phase = {
    name: `pg Pool(${POOL}) BEGIN; INSERT task; UPDATE image; COMMIT`,
    requests: lat.length,
    seconds: pgSeconds,
    p50: Math.round(lat[Math.floor(lat.length * 0.5)]),
    p99: Math.round(lat[Math.floor(lat.length * 0.99)]),
    errors: '',
    cpu: cpuDelta(a0, cpuSnapshot(pids)),
    rss: phaseRss.peak,
  };
  phases.push(pgP);
  console.log(`${pgP.name}: ${f1(lat.length / pgSeconds)} tx/s, p99 ${pgP.p99} ms`);
  await pool.end();
  // The baseline's backends must be gone before the next phase's CPU snapshot: postgres CPU is summed
  // over the live postgres processes, and a backend exiting inside a phase took its CPU out of the sum.
  while (Number((await pg.query(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench-pg-baseline'`)).rows[0].count) > 0) await sleep(50);
  await sleep(200); // the process outlives its pg_stat_activity row by a moment

  let next = 0;
  const eventsBefore = events;
  const enqP = await cannon('enqueue', 'POST /api/images/:id/segmentation, 1 user, distinct images', {
    url: api.url,
    headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
    requests: [{ method: 'POST', body: '{}', setupRequest: (req) => ({ ...req, path: `/api/images/${enqIds[next++ % enqIds.length]}/segmentation` }) }],
  });
  loadDone = true;
  const rss = await rssPeak;
  const metricsText = await (await fetch(`${api.url}/api/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(metricsText)?.[1] ?? NaN);
  const heap = { total: gauge('nodejs_heap_size_total_bytes'), used: gauge('nodejs_heap_size_used_bytes'), external: gauge('nodejs_external_memory_bytes') };
  await sleep(500);
  const eventsDuringEnqueue = events - eventsBefore;
  const created = Number((await pg.query('SELECT count(*) FROM queue_jobs WHERE user_id = $1', [user.id])).rows[0].count);
  socket.close();
  bare.child.kill('SIGTERM');

  let profile = '';
  if (PROFILE) {
    await api.stop();
    const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      const s = summariseCpuProfile(path.join(profDir, file), 16);
      profile = [
        '',
        `CPU profile of the api over the whole run (\`--cpu-prof\`, self time, ${f1(s.totalMs)} ms total):`,
        '',
        table(['where', 'self ms'], s.byPlace.map(([k, v]) => [k, f1(v)])),
        '',
        table(['function', 'self ms'], s.byFunction.map(([k, v]) => [k.replace(/\|/g, '\\|'), f1(v)])),
      ].join('\n');
    }
  }

  // ---- report
  const rate = (p: Phase) => p.requests / p.seconds;
  const msPer = (p: Phase, key: string) => {
    const v = p.cpu.find(([k]) => k === key)?.[1] ?? NaN;
    return f3((v * 1000) / p.requests);
  };
  const cpuCols = ['api', 'worker1', 'worker2', 'bare', 'postgres (all backends)', 'redis-server', 'bench (load generator)', 'machine total (busy)'];
  const mainTable = table(
    ['phase (50 connections)', 'count', 'per s', 'p50 ms', 'p99 ms', 'status codes', 'api RSS peak MiB', ...cpuCols.map((c) => `CPU ms/req ${c}`)],
    phases.map((p) => [p.name, p.requests, f1(rate(p)), p.p50, p.p99, p.errors, f1(p.rss / MB), ...cpuCols.map((c) => msPer(p, c))]),
  );
  const r1 = rate(liveP) / rate(bareP);
  const r2 = rate(taskP) / rate(liveP);
  const r3 = rate(enqP) / rate(pgP);
  const goal = (ok: boolean) => (ok ? 'met' : '**NOT met**');
  const goals = table(
    ['goal', 'measured', 'status'],
    [
      ['`/api/health/live` ≥ 0.9 × bare one-route NestJS on Fastify (issue 24: keep)', `${f3(r1)} (${f1(rate(liveP))} vs ${f1(rate(bareP))} req/s)`, goal(r1 >= 0.9)],
      ['`GET /api/segmentation/tasks/:id` ≥ 0.3 × `/live`', `${f3(r2)} (${f1(rate(taskP))} vs ${f1(rate(liveP))} req/s), p99 ${taskP.p99} ms`, goal(r2 >= 0.3)],
      ['enqueue `POST /api/images/:id/segmentation` ≥ 0.5 × same-run bare `pg` insert+update transaction', `${f3(r3)} (${f1(rate(enqP))} vs ${f1(rate(pgP))} /s)`, goal(r3 >= 0.5)],
      ['enqueue p99 ≤ 100 ms', `${enqP.p99} ms`, goal(enqP.p99 <= 100)],
      ['api RSS ≤ 250 MiB under load (peak of all phases)', `${f1(rss / MB)} MiB`, goal(rss <= 250 * MB)],
    ],
  );
  const body = [
    `One \`api\` (LOG_LEVEL=info, NODE_ENV=production, DATABASE_POOL_MAX=${POOL}) with the enqueuing user's Socket.IO client connected (it received ${eventsDuringEnqueue} events during the enqueue phase), two \`worker\` processes (QUEUE_CONCURRENCY=10; the queue is paused so the measured requests are the only load), the bare app in its own process, autocannon in the bench process; ${SECONDS} s per phase after a 1 s warm-up of each HTTP target (the enqueue route: ${ENQ_WARMUP_IMAGES} enqueues of a third user's images); the bare app, \`/live\` and the task read alternate in ${ROUNDS} slices of ${f1(SECONDS / ROUNDS)} s each (summed; p50 and p99 are the worst slice's). Rate limit counted on every request (RATE_LIMIT_PER_MINUTE=10⁹ so nothing is refused). The enqueue phase posts to a different image of one (non-premium) user per request (${created} tasks recorded for the user); the pg baseline inserts a task and updates its image for a different user's images in the same database. CPU per request: CPU seconds from /proc per process over the phase / requests (postgres: all backends on the machine; machine: all busy CPU, others' included).`,
    '',
    mainTable,
    '',
    goals,
    '',
    `api RSS idle (after start-up and seeding) ${f1(idleRss / MB)} MiB, peak under load ${f1(rss / MB)} MiB; after the load: V8 heap ${f1(heap.used / MB)} used of ${f1(heap.total / MB)} MiB, external ${f1(heap.external / MB)} MiB.`,
    '',
    `Machine load by others just before the run: ${f2(busy)} busy cores.`,
    profile,
  ].join('\n');
  console.log('\n' + body);
  writeResults('api', 'API request cost (health, task read, enqueue) vs same-run baselines', invocation(process.env.BENCH_BUILD), body);
});
