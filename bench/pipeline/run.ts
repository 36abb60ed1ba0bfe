/**
 * Pipeline drain throughput: 2 `worker` processes × QUEUE_CONCURRENCY=10 against an ML stub that
 * answers after 50 ms, versus the ideal 2 × 10 / 0.05 s = 400 tasks/s, and versus a bare Bull queue
 * (same Redis, own queue name, 2 forked processes × 10, processor sleeps 50 ms) with the same number
 * of jobs and the same job options, in the same run.
 *
 *   node dist/bench/pipeline/run.js            # BENCH_TASKS=2000 by default
 */
import { fork, spawn, ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Bull from 'bull';
import {
  adminToken,
  Backend,
  benchEnv,
  f1,
  f2,
  f3,
  json,
  register,
  runMain,
  seedImages,
  settle,
  sleep,
  startBackend,
  startTimedStub,
  table,
  writeResults,
  invocation,
  pct,
} from '../common/harness';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { Client } from 'pg';
import { io, Socket } from 'socket.io-client';
import { cpuDelta, cpuSnapshot, machineCpu, metric, scrape, summariseCpuProfile, waitForQuiet } from '../common/probe';
import { BenchServers, parseCommandStats, postgresCpuSeconds, postgresWakeCounts, processCpuSeconds, rssMiB, wakeCounts, withBenchServers, type WakeCounts } from './servers';

const TASKS = Number(process.env.BENCH_TASKS ?? 2000);
const WORKERS = 2;
const CONCURRENCY = 10;
const LATENCY_MS = Number(process.env.BENCH_ML_LATENCY_MS ?? 50); // other values only to see how costs scale, never for the reported figures
const IDEAL = (WORKERS * CONCURRENCY) / (LATENCY_MS / 1000);
const DRAIN_TIMEOUT_MS = 90_000;
/** BENCH_PROFILE=1: the workers run with --cpu-prof; the profile's self time is summarised. */
const PROFILE = process.env.BENCH_PROFILE === '1';
/**
 * The first drain of freshly started processes runs code V8 has not compiled yet (and fills pools,
 * plan caches and keep-alive sockets): it is reported, as the start-up figure, but the figures of the
 * issue are those of processes that have run before, as users' long-running workers have. The settling
 * drains (below) follow it; bare Bull drains as many times before its measured drain. BENCH_WARMUP=0:
 * none of them, the measured drain is the first.
 */
const WARM_UP = process.env.BENCH_WARMUP !== '0';
/**
 * After the first drain, V8 is still compiling: a per-job function runs about 1 000 times per worker
 * per drain, and TurboFan takes up a function only after its budget of executed bytecode is spent, so
 * functions are optimized for the first time during the second, third and fourth drains too (a V8 log
 * showed ~190, then ~120 first optimizations per drain; on-CPU samples of the compiler threads fell
 * 3 427 → 1 844 → 697 → 318, finding 15). Settling drains, reported but not the figures, run until the
 * workers' CPU per task falls by less than SETTLE_DROP from the drain before (at most SETTLE_MAX).
 */
const SETTLE_MAX = Number(process.env.BENCH_SETTLE_MAX ?? 6);
/**
 * At least this many settling drains (BENCH_SETTLE_MIN): one drain that happened to fall by less than
 * SETTLE_DROP ended the settling after 2–3 drains in some runs while the workers' CPU per task was still
 * falling (finding 17), which made runs of two builds incomparable.
 */
const SETTLE_MIN = Math.min(SETTLE_MAX, Number(process.env.BENCH_SETTLE_MIN ?? 4));
const SETTLE_DROP = 0.1;
/** How the bench's PostgreSQL commits, for the Setting line (BENCH_PG_SYNCHRONOUS_COMMIT: diagnostic runs only). */
const PG_DURABILITY =
  (process.env.BENCH_PG_SYNCHRONOUS_COMMIT ?? 'on') === 'on'
    ? 'fsync, synchronous_commit and full_page_writes on'
    : `fsync and full_page_writes on, synchronous_commit ${process.env.BENCH_PG_SYNCHRONOUS_COMMIT} (BENCH_PG_SYNCHRONOUS_COMMIT: a diagnostic run, not the figures)`;
/** BENCH_PG_TRACK_PLANNING=1: pg_stat_statements also counts plans and planning time (two more columns). */
const TRACK_PLANNING = process.env.BENCH_PG_TRACK_PLANNING === '1';
const profDir = PROFILE ? mkdtempSync(path.join(os.tmpdir(), 'bench-prof-')) : '';
/**
 * BENCH_PERF=<dir>: the workers run with --perf-basic-prof and each drain is sampled on CPU time by Linux
 * `perf record -e cpu-clock` (every thread of both workers, only while on a core), one file per drain in
 * <dir>. Unlike --cpu-prof, whose samples are wall-clock time while JavaScript runs, a worker preempted
 * by PostgreSQL inside a call is not sampled. For finding where CPU goes, never for the figures.
 */
const PERF_DIR = process.env.BENCH_PERF ?? '';

interface WorkerFigures {
  jobs: number;
  jobAvgMs: number;
  mlAvgMs: number;
  dbQueries: number;
  dbQueryAvgMs: number;
  poolAcquireAvgMs: number;
  /** The worker's share of ML answer → event: `segmentation_completion_publish_seconds` buckets (le ms → count). */
  publishBuckets: Array<[number, number]>;
}

function workerFigures(before: string, after: string): WorkerFigures {
  const d = (name: string, labels: Record<string, string> = {}) => metric(after, name, labels) - metric(before, name, labels);
  const jobs = d('segmentation_job_duration_seconds_count');
  return {
    jobs,
    jobAvgMs: (d('segmentation_job_duration_seconds_sum') / jobs) * 1000,
    mlAvgMs: (d('ml_request_duration_seconds_sum') / d('ml_request_duration_seconds_count')) * 1000,
    dbQueries: d('db_query_duration_seconds_count'),
    dbQueryAvgMs: (d('db_query_duration_seconds_sum') / d('db_query_duration_seconds_count')) * 1000,
    poolAcquireAvgMs: (d('db_pool_acquire_seconds_sum') / Math.max(1, d('db_pool_acquire_seconds_count'))) * 1000,
    publishBuckets: [1, 2, 5, 10, 20, 30, 50, 75, 100, 200, 500, 1000].map((ms) => [
      ms,
      d('segmentation_completion_publish_seconds_bucket', { le: String(ms / 1000) }),
    ]),
  };
}

interface Phase {
  label: string;
  completed: number;
  failed: number;
  seconds: number;
  cpu: Array<[string, number]>;
  /** Syscalls and context switches during the drain, per process. */
  wakes: Array<[string, WakeCounts]>;
  perWorker: Array<WorkerFigures & { name: string }>;
  /** ML answer sent → `segmentation:completed` at the client, ms, per task of the phase. */
  latencies: number[];
  /** The same without the first 2 × WORKERS × CONCURRENCY answers of the drain. */
  warmLatencies: number[];
  /** Position (by answer time) of the first task in the slowest 1 %. */
  worstFirst: number;
  noEvent: number;
  apiRssMaxMiB: number;
  statements: Array<{ query: string; calls: number; ms: number; plans: number; planMs: number }>;
  redisCalls: Array<[string, number]>;
  busyOthers: number;
}

/** Syscalls and context switches of every process of the system under test (PostgreSQL: the whole server). */
function systemWakes(s: BenchServers, pids: Record<string, number>): Map<string, WakeCounts> {
  const m = new Map<string, WakeCounts>();
  for (const [k, pid] of Object.entries(pids)) m.set(k, wakeCounts(pid));
  m.set('postgres (all processes)', postgresWakeCounts(s.postmasterPid));
  m.set('redis-server', wakeCounts(s.redisPid));
  return m;
}

/** Every process of the system under test (and the bench's own, reported apart): api, workers, PostgreSQL (whole server), Redis (the server). */
function systemCpu(s: BenchServers, pids: Record<string, number>): Map<string, number> {
  const m = new Map<string, number>();
  for (const [k, pid] of Object.entries(pids)) m.set(k, processCpuSeconds(pid));
  m.set('postgres (all processes)', postgresCpuSeconds(s.postmasterPid));
  m.set('redis-server', processCpuSeconds(s.redisPid));
  const self = process.cpuUsage();
  m.set(BENCH_SELF, (self.user + self.system) / 1e6);
  m.set('machine total (busy)', machineCpu().busy);
  return m;
}

/** `perf record` of the given processes until stop() (SIGINT, then perf writes its file). */
async function startPerf(pids: number[], out: string) {
  // BENCH_PERF_ALL=1: every process on the machine (PostgreSQL, Redis, the api, the bench), not only the workers.
  const target = process.env.BENCH_PERF_ALL === '1' ? ['-a'] : ['-p', pids.join(',')];
  // BENCH_PERF_ARGS: more `perf record` options (a later -F wins; e.g. `-F 250 --call-graph dwarf,8192`).
  const extra = (process.env.BENCH_PERF_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '2000', ...extra, ...target, '-o', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await sleep(300); // perf attaches to every thread before the drain starts
  return {
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

async function pipeline(servers: BenchServers) {
  const env = benchEnv('pipe');
  const queueName = env.queue('seg');
  const stub = await startTimedStub(LATENCY_MS);
  const databaseUrl = servers.pg.urlFor(env.dbName);
  const common: Record<string, string> = {
    QUEUE_NAME: queueName,
    ML_SERVICE_URL: stub.url,
    DATABASE_URL: databaseUrl,
    REDIS_URL: servers.redis.url,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    DATABASE_POOL_MAX: '10',
    ...(process.env.QUEUE_FAIRNESS !== undefined ? { QUEUE_FAIRNESS: process.env.QUEUE_FAIRNESS } : {}),
  };
  // The api first: it creates the database and runs the migrations.
  const api = await startBackend(env, 'api', common, 'api');
  const workers: Backend[] = [];
  const prof = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), ...(PERF_DIR ? ['--perf-basic-prof', `--logfile=${path.join(PERF_DIR, 'v8.log')}`] : []) /* the small V8 log that flag opens goes there too, not into the cwd */, ...(process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  for (let i = 0; i < WORKERS; i++)
    workers.push(await startBackend(env, 'worker', { ...common, QUEUE_CONCURRENCY: String(CONCURRENCY) }, `worker${i + 1}`, prof));
  const admin = await adminToken(api, env);
  await json(api.request('/api/queue/pause', { method: 'POST', token: admin }), 200);

  // Client-side time limits: a bench step that hangs fails with its own message instead of waiting forever.
  const pg = new Client({ connectionString: databaseUrl, query_timeout: 60_000 });
  await pg.connect();
  await pg.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const redis = servers.redis.client();
  const user = await register(api);
  const ids = await seedImages(api, env, pg, user.token, user.id, TASKS);

  // A client subscribed to every event on the api, as a frontend would be.
  const socket: Socket = io(api.url, { path: '/socket.io', auth: { token: user.token }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (e) => reject(e));
  });
  const arrivedAt = new Map<string, number>();
  const eventCounts = new Map<string, number>();
  socket.onAny((event: string, payload: { taskId?: string }) => {
    eventCounts.set(event, (eventCounts.get(event) ?? 0) + 1);
    if (event === 'segmentation:completed' && payload?.taskId) arrivedAt.set(payload.taskId, performance.now());
  });

  const pids: Record<string, number> = { api: api.pid };
  workers.forEach((w) => (pids[w.name] = w.pid));

  const drain = async (label: string): Promise<Phase> => {
    const taskIds: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const b = await json<{ tasks: Array<{ taskId: string }> }>(
        api.request('/api/segmentation/batch', { token: user.token, json: { imageIds: ids.slice(i, i + 500) } }),
        202,
      );
      if (b.tasks.length !== Math.min(500, ids.length - i)) throw new Error('batch returned a short task list');
      taskIds.push(...b.tasks.map((t) => t.taskId));
    }
    const busyOthers = await waitForQuiet();
    await sleep(1500); // let the statistics of the enqueue reach pg_stat_statements before the reset
    await pg.query('SELECT pg_stat_statements_reset()');
    const cmd0 = parseCommandStats(await redis.info('commandstats'));
    const before = await Promise.all(workers.map((w) => scrape(w.url)));
    const cpu0 = systemCpu(servers, pids);
    const wakes0 = systemWakes(servers, pids);
    let apiRssMaxMiB = rssMiB(api.pid);
    const rssTimer = setInterval(() => (apiRssMaxMiB = Math.max(apiRssMaxMiB, rssMiB(api.pid))), 50);

    const perf = PERF_DIR ? await startPerf(workers.map((w) => w.pid), path.join(PERF_DIR, `${label.replace(/[^a-z0-9]+/gi, '-')}.data`)) : undefined;
    const t0 = performance.now();
    await json(api.request('/api/queue/resume', { method: 'POST', token: admin }), 200);
    // The end: every task of the phase finished in PostgreSQL. Watched through the client's
    // `segmentation:completed` events (sent after the row is written), so the bench adds no statements
    // to the PostgreSQL figures; PostgreSQL is asked every 500 ms (and once at the end) for the truth.
    const phaseIds = new Set(taskIds);
    let seen = 0;
    const onCompleted = (event: string, payload: { taskId?: string }) => {
      if (event === 'segmentation:completed' && payload?.taskId && phaseIds.has(payload.taskId)) seen++;
    };
    socket.onAny(onCompleted);
    const count = async () =>
      (
        await pg.query<{ done: number; bad: number }>(
          `SELECT count(*) FILTER (WHERE status = 'completed')::int AS done,
                  count(*) FILTER (WHERE status IN ('failed','cancelled'))::int AS bad FROM queue_jobs WHERE task_id = ANY($1::uuid[])`,
          [taskIds],
        )
      ).rows[0];
    let completed = 0;
    let failed = 0;
    let lastAsked = performance.now();
    for (;;) {
      if (seen >= TASKS || performance.now() - lastAsked > 500) {
        const r = await count();
        lastAsked = performance.now();
        completed = r.done;
        failed = r.bad;
        if (completed + failed >= TASKS) break;
      }
      if (performance.now() - t0 > DRAIN_TIMEOUT_MS) throw new Error(`${label} drain timed out: ${completed}/${TASKS} completed`);
      await sleep(5);
    }
    socket.offAny(onCompleted);
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = systemCpu(servers, pids);
    const wakes1 = systemWakes(servers, pids);
    await perf?.stop();
    clearInterval(rssTimer);
    await json(api.request('/api/queue/pause', { method: 'POST', token: admin }), 200);
    const after = await Promise.all(workers.map((w) => scrape(w.url)));
    await sleep(300); // the last events
    const cmd1 = parseCommandStats(await redis.info('commandstats'));
    await sleep(1200); // backends report their statement statistics within a second of going idle
    const { rows: stmts } = await pg.query<{ query: string; calls: string; ms: number; plans: string; plan_ms: number }>(
      `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time AS ms, plans, total_plan_time AS plan_ms
         FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC, total_exec_time DESC`,
    );
    const pairs: Array<[number, number]> = []; // [answer sent, latency]
    let noEvent = 0;
    for (const id of taskIds) {
      const a = arrivedAt.get(id);
      const s = stub.sentAt.get(id);
      if (a === undefined || s === undefined) noEvent++;
      else pairs.push([s, a - s]);
    }
    pairs.sort((x, y) => x[0] - y[0]);
    const latencies = pairs.map(([, l]) => l);
    // The first answers of a drain meet cold connections (pool, prepared statements, keep-alive sockets).
    const warmLatencies = pairs.slice(2 * WORKERS * CONCURRENCY).map(([, l]) => l);
    const worstFirst = Math.min(...pairs.map(([, l], i) => (l >= pct(latencies, 99) ? i : Infinity)));
    const redisCalls = [...cmd1.entries()].map(([k, v]) => [k, v - (cmd0.get(k) ?? 0)] as [string, number]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    return {
      label,
      completed,
      failed,
      seconds,
      cpu: [...cpu1.entries()].map(([k, v]) => [k, v - (cpu0.get(k) ?? 0)] as [string, number]),
      wakes: [...wakes1.entries()].map(([k, w]) => {
        const w0 = wakes0.get(k)!;
        const d = Object.fromEntries(Object.entries(w).map(([f, v]) => [f, v - w0[f as keyof WakeCounts]])) as unknown as WakeCounts;
        return [k, d];
      }),
      perWorker: workers.map((w, i) => ({ name: w.name, ...workerFigures(before[i], after[i]) })),
      latencies,
      warmLatencies,
      worstFirst,
      noEvent,
      apiRssMaxMiB,
      statements: stmts.map((r) => ({ query: r.query, calls: Number(r.calls), ms: r.ms, plans: Number(r.plans), planMs: r.plan_ms })),
      redisCalls,
      busyOthers,
    };
  };

  // Fresh processes first (see WARM_UP): this drain is the start-up figure.
  const cold = WARM_UP ? await drain(`ML stub ${LATENCY_MS} ms, first drain of fresh processes`) : undefined;
  if (cold) console.log(`${cold.label}: ${cold.completed} completed in ${f2(cold.seconds)} s = ${f1(cold.completed / cold.seconds)} tasks/s`);
  // Then drains that are not reported as figures until the workers' CPU per task stops falling (see SETTLE).
  const settling = cold
    ? await settle(
        cold,
        async (n) => {
          const w = await drain(`ML stub ${LATENCY_MS} ms, settling drain ${n}`);
          console.log(`${w.label}: ${f2(w.seconds)} s, workers' CPU ${f2(workerCpuPerTask(w))} ms per task`);
          return w;
        },
        workerCpuPerTask,
        SETTLE_MAX,
        SETTLE_DROP,
        SETTLE_MIN,
      )
    : [];
  const slow = await drain(`ML stub ${LATENCY_MS} ms`);
  console.log(`${slow.label}: ${slow.completed} completed in ${f2(slow.seconds)} s = ${f1(slow.completed / slow.seconds)} tasks/s`);
  stub.latencyMs = 0;
  const instant = await drain('ML stub instant');
  console.log(`${instant.label}: ${instant.completed} completed in ${f2(instant.seconds)} s = ${f1(instant.completed / instant.seconds)} tasks/s`);
  const apiRssAfterMiB = rssMiB(api.pid);
  socket.close();
  redis.disconnect();
  await pg.end();
  for (const b of [api, ...workers]) await b.stop();
  return { cold, settling, slow, instant, stubCalls: stub.calls, apiRssAfterMiB, events: eventCounts, fairness: process.env.QUEUE_FAIRNESS };
}

/** `warmUps`: drains before the measured one, as many as the pipeline's (start-up and settling drains). */
async function bare(redisUrl: string, warmUps: number, sleepMs: number) {
  const env = benchEnv('bare');
  const name = 'segmentation';
  const prefix = `{${env.queue('bare')}}`;
  const q = new Bull(name, redisUrl, { prefix });
  await q.isReady();
  await q.pause();
  // Same options as the app's jobs (SegmentationQueue.jobOptions): default priority 1 → Bull 10.
  const opts = (i: number): Bull.JobOptions => ({
    jobId: `bare-${i}`,
    priority: 10,
    attempts: 3,
    backoff: { type: 'exponential', delay: 2000 },
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 24 * 3600, count: 5000 },
  });
  const add = async (from: number) => {
    for (let i = from; i < from + TASKS; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, from + TASKS - i) }, (_, k) => ({ name: 'segment', data: { taskId: `t${i + k}`, imageId: i + k, userId: 1 }, opts: opts(i + k) }));
      await q.addBulk(chunk);
    }
  };
  await add(0);
  const children: ChildProcess[] = [];
  const done = new Map<number, number>();
  const ready: Promise<void>[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const c = fork(path.join(__dirname, 'bare-worker.js'), [redisUrl, prefix, name, String(CONCURRENCY), String(sleepMs)]);
    children.push(c);
    ready.push(new Promise((r) => c.on('message', (m: { ready?: boolean; done?: number }) => (m.ready ? r() : done.set(i, m.done ?? 0)))));
  }
  await Promise.all(ready);
  await sleep(500); // let the blocking clients connect
  const pids: Record<string, number> = {};
  children.forEach((c, i) => (pids[`bare${i + 1}`] = c.pid!));
  const sum = () => [...done.values()].reduce((a, b) => a + b, 0);
  const run = async (until: number) => {
    const busyOthers = await waitForQuiet();
    const cpu0 = cpuSnapshot(pids);
    const t0 = performance.now();
    await q.resume();
    while (sum() < until) {
      if (performance.now() - t0 > DRAIN_TIMEOUT_MS) throw new Error(`bare drain timed out: ${sum()}/${until}`);
      await sleep(2);
    }
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, cpu0, cpu1: cpuSnapshot(pids), busyOthers };
  };
  for (let i = 1; i <= warmUps; i++) {
    await run(i * TASKS); // as many drains as the pipeline's before its measured one
    await q.pause();
    await add(i * TASKS);
  }
  const { seconds, cpu0, cpu1, busyOthers } = await run((warmUps + 1) * TASKS);
  for (const c of children) c.send({ stop: true });
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await q.close();
  return { seconds, cpu: cpuDelta(cpu0, cpu1), busyOthers };
}

const BENCH_SELF = 'bench process (ML stub, Socket.IO client; not in the system)';
const SYSTEM = (k: string) => k !== 'machine total (busy)' && k !== BENCH_SELF;
/** Both workers' CPU per task of a drain, ms. */
const workerCpuPerTask = (ph: Phase) => (ph.cpu.filter(([k]) => k.startsWith('worker')).reduce((a, [, v]) => a + v, 0) * 1000) / TASKS;
/** Whole-system CPU (api + workers + PostgreSQL + Redis) per task of a drain, ms. */
const sysPerTask = (ph: Phase) => (ph.cpu.filter(([k]) => SYSTEM(k)).reduce((a, [, v]) => a + v, 0) * 1000) / TASKS;

/**
 * The workers' share of that latency (`segmentation_completion_publish_seconds`: ML answer at the worker →
 * event published, the result written first), from their histograms: the bucket holding p50 and p99.
 */
function workerShare(p: Phase): string {
  const merged = p.perWorker[0].publishBuckets.map(([le], k) => [le, p.perWorker.reduce((a, w) => a + w.publishBuckets[k][1], 0)] as const);
  const total = merged[merged.length - 1][1];
  if (total === 0) return 'Worker share: no completion observed.';
  const at = (q: number) => merged.find(([, n]) => n >= q * total)?.[0];
  const share = (ms: number) => (100 * (merged.find(([le]) => le === ms)?.[1] ?? 0)) / total;
  return `Of that, in the workers (ML answer at the worker → event published, result written first; histogram buckets): p50 ≤ ${at(0.5)} ms, p99 ≤ ${at(0.99) ?? '> 1000'} ms; ${f1(share(10))} % within 10 ms, ${f1(share(50))} % within 50 ms.`;
}

function phaseReport(p: Phase, ideal?: number): string {
  const rate = p.completed / p.seconds;
  const perTask = (v: number) => f2((v * 1000) / TASKS);
  const system = p.cpu.filter(([k]) => SYSTEM(k)).reduce((a, [, v]) => a + v, 0);
  const cpuRows = [...p.cpu.filter(([k]) => SYSTEM(k)), ['whole system (api + workers + PostgreSQL + Redis)', system] as [string, number], ...p.cpu.filter(([k]) => !SYSTEM(k))].map(
    ([k, v]) => [k, f2(v), perTask(v)],
  );
  const wk = table(
    ['worker', 'jobs', 'job avg ms', 'ML call avg ms', 'DB queries/job', 'DB query avg ms', 'pool acquire avg ms'],
    p.perWorker.map((w) => [w.name, w.jobs, f1(w.jobAvgMs), f1(w.mlAvgMs), f1(w.dbQueries / w.jobs), f2(w.dbQueryAvgMs), f2(w.poolAcquireAvgMs)]),
  );
  const stmtCalls = p.statements.reduce((a, x) => a + x.calls, 0);
  const stmtRows = p.statements
    .slice(0, 12)
    .map((x) => [x.query.slice(0, 140).replace(/\|/g, '\\|'), x.calls, f2(x.calls / TASKS), f2(x.ms), ...(TRACK_PLANNING ? [x.plans, f2(x.planMs)] : [])]);
  const redisTotal = p.redisCalls.reduce((a, [, v]) => a + v, 0);
  const redisRows = p.redisCalls.slice(0, 14).map(([k, v]) => [k, v, f2(v / TASKS)]);
  return [
    `### ${p.label}`,
    '',
    `${p.completed} completed, ${p.failed} failed/cancelled in ${f2(p.seconds)} s = **${f1(rate)} tasks/s**${ideal ? ` = **${f3(rate / ideal)} of ideal** (${ideal} tasks/s)` : ''}. Machine load by others just before: ${f2(p.busyOthers)} busy cores.`,
    '',
    `ML answer sent → \`segmentation:completed\` at the client: p50 **${f1(pct(p.latencies, 50))} ms**, p99 **${f1(pct(p.latencies, 99))} ms**, max ${f1(pct(p.latencies, 100))} ms (${p.latencies.length} tasks, ${p.noEvent} without an event); without the first ${2 * WORKERS * CONCURRENCY} answers of the drain p50 ${f1(pct(p.warmLatencies, 50))} ms, p99 ${f1(pct(p.warmLatencies, 99))} ms (the slowest 1 % start at answer #${p.worstFirst + 1}). api RSS max during the drain: **${f1(p.apiRssMaxMiB)} MiB**.`,
    workerShare(p),
    '',
    'CPU during the drain, from /proc:',
    '',
    table(['process', 'CPU s', 'CPU ms per task'], cpuRows),
    '',
    'System calls, context switches and kernel CPU per task during the drain, from /proc (`io` syscr/syscw; every thread\'s `status`; `stat` stime, the part of the CPU above spent in the kernel; PostgreSQL without children that exited meanwhile):',
    '',
    table(
      ['process', 'read syscalls', 'write syscalls', 'voluntary switches (woken)', 'involuntary switches (preempted)', 'kernel CPU ms'],
      p.wakes.map(([k, w]) => [k, f1(w.reads / TASKS), f1(w.writes / TASKS), f1(w.voluntary / TASKS), f1(w.involuntary / TASKS), f2((w.kernelSeconds * 1000) / TASKS)]),
    ),
    '',
    wk,
    '',
    `PostgreSQL statements during the drain (pg_stat_statements, whole server): ${stmtCalls} = **${f2(stmtCalls / TASKS)} per task**. Most called:`,
    '',
    table(['statement', 'calls', 'per task', 'total exec ms', ...(TRACK_PLANNING ? ['plans', 'total plan ms'] : [])], stmtRows),
    '',
    `Redis commands during the drain (INFO commandstats): ${redisTotal} = **${f2(redisTotal / TASKS)} per task**:`,
    '',
    table(['command', 'calls', 'per task'], redisRows),
  ].join('\n');
}

runMain(async () => {
  console.log(`pipeline bench: ${TASKS} tasks, ${WORKERS} workers × ${CONCURRENCY}, ML ${LATENCY_MS} ms, ideal ${IDEAL} tasks/s`);
  const { p, b, bi } = await withBenchServers(async (servers) => {
    const p = await pipeline(servers);
    const b = await bare(servers.redis.url, p.cold ? 1 + p.settling.length : 0, LATENCY_MS);
    // Bare Bull's own CPU per task with a handler that answers at once: how much of the pipeline's gap
    // between its 50 ms and instant drains Bull and Node show without any of the app's work.
    const bi = await bare(servers.redis.url, p.cold ? 1 + p.settling.length : 0, 0);
    return { p, b, bi };
  });
  const pRate = p.slow.completed / p.slow.seconds;
  const bRate = TASKS / b.seconds;
  const iRate = p.instant.completed / p.instant.seconds;
  const rows = [
    [`spheroseg pipeline (2 worker processes × 10), ML ${LATENCY_MS} ms`, TASKS, f2(p.slow.seconds), f1(pRate), f3(pRate / IDEAL)],
    [`bare Bull (2 forked processes × 10, sleep ${LATENCY_MS} ms)`, TASKS, f2(b.seconds), f1(bRate), f3(bRate / IDEAL)],
    ['bare Bull, handler answering at once', TASKS, f2(bi.seconds), f1(TASKS / bi.seconds), '–'],
    ['spheroseg pipeline, ML stub answering at once', TASKS, f2(p.instant.seconds), f1(iRate), '–'],
    ...(p.cold
      ? [[`spheroseg pipeline, ML ${LATENCY_MS} ms, first drain of fresh processes (start-up, not the figure)`, TASKS, f2(p.cold.seconds), f1(p.cold.completed / p.cold.seconds), f3(p.cold.completed / p.cold.seconds / IDEAL)]]
      : []),
  ];
  const lat99 = pct(p.slow.latencies, 99);
  const rssMax = Math.max(p.slow.apiRssMaxMiB, p.instant.apiRssMaxMiB);
  const goal = (ok: boolean) => (ok ? 'met' : '**NOT met**');
  const lat50 = pct(p.slow.latencies, 50);
  /** The start-up drain's figure for an anchor cell, after `sep` (nothing without a warm-up). */
  const coldNote = (fmt: (c: Phase) => string, sep = '; ') => (p.cold ? `${sep}first drain of fresh processes ${fmt(p.cold)}` : '');
  const perTask = (ph: Phase, k: string) => ((ph.cpu.find(([n]) => n === k)?.[1] ?? 0) * 1000) / TASKS;
  const byProcess = (ph: Phase) =>
    ['api', 'worker', 'postgres', 'redis']
      .map((k) => `${k} ${f2(ph.cpu.filter(([n]) => SYSTEM(n) && n.startsWith(k)).reduce((a, [n]) => a + perTask(ph, n), 0))}`)
      .join(', ');
  /** Bare Bull's workers and Redis, CPU ms per task (what the pipeline's workers and Redis compare with). */
  const bareSys = (r: typeof b) => (r.cpu.filter(([n]) => n.startsWith('bare') || n === 'redis-server').reduce((a, [, v]) => a + v, 0) * 1000) / TASKS;
  // Issue 24's table: each figure with its goal, in the same run as its anchor.
  const goals = table(
    ['figure (issue 24)', 'measured', 'goal', 'anchor (same run)', ''],
    [
      [`drain of ${TASKS} tasks / ideal (${IDEAL}/s)`, f3(pRate / IDEAL), '≥ 0.92', `bare Bull ${f3(bRate / IDEAL)}${coldNote((c) => f3(c.completed / c.seconds / IDEAL))}`, goal(pRate / IDEAL >= 0.92)],
      [
        `whole-system CPU per task, ML ${LATENCY_MS} ms (api + workers + PostgreSQL + Redis)`,
        `${f2(sysPerTask(p.slow))} ms (${byProcess(p.slow)})`,
        '≤ 2.0 ms',
        `instant stub ${f2(sysPerTask(p.instant))} ms (${byProcess(p.instant)})${coldNote((c) => `${f2(sysPerTask(c))} ms (${byProcess(c)})`)}; bare Bull, workers + Redis: ${f2(bareSys(b))} ms at ${LATENCY_MS} ms, ${f2(bareSys(bi))} ms answering at once`,
        goal(sysPerTask(p.slow) <= 2.0),
      ],
      [
        `ML answer → client \`segmentation:completed\`, p99 (p50)`,
        `${f1(lat99)} ms (${f1(lat50)} ms)`,
        '≤ 50 ms',
        coldNote((c) => `${f1(pct(c.latencies, 99))} ms (${f1(pct(c.latencies, 50))} ms)`, ''),
        goal(lat99 <= 50),
      ],
      ['instant-stub drain', `${f1(iRate)} tasks/s`, '≥ 1 000/s', '', goal(iRate >= 1000)],
      ['api RSS under load', `${f1(rssMax)} MiB`, '≤ 250 MiB', '', goal(rssMax <= 250)],
    ],
  );
  const bareCpu = b.cpu.map(([k, v]) => [k, f2(v), f2((v * 1000) / TASKS), f2(((bi.cpu.find(([n]) => n === k)?.[1] ?? NaN) * 1000) / TASKS)]);
  const events = [...p.events.entries()].map(([k, v]) => `${k} ${v}`).join(', ');
  const body = [
    `Setting: one \`api\` and ${WORKERS} \`worker\` processes from the build, \`QUEUE_CONCURRENCY=${CONCURRENCY}\`, \`DATABASE_POOL_MAX=10\`, \`NODE_ENV=production\`, \`LOG_LEVEL=${process.env.BENCH_LOG_LEVEL ?? 'info'}\`, \`QUEUE_FAIRNESS=${p.fairness ?? '(app default)'}\`; a Socket.IO client (websocket) connected to the api as the tasks' owner, listening to every event; the bench's own PostgreSQL 15 (${PG_DURABILITY}, pg_stat_statements) and Redis 7 servers, so that their CPU is the bench's alone. ${TASKS} tasks enqueued through \`POST /api/segmentation/batch\` (500 ids per call) while the queue is paused, timed from \`POST /api/queue/resume\` until PostgreSQL has every task of the phase finished (watched through the client's \`segmentation:completed\` events, confirmed in PostgreSQL; the bench's own statements are then a handful); then the same images are enqueued again and drained with the ML stub answering at once.${p.cold ? ` Before the measured 50 ms drain the freshly started processes drain the same number of tasks once (reported apart as the start-up figure), then drain again until the workers' CPU per task settles (the settling drains, below): V8 compiles the hot code during them, and users' workers and api run for days, so the issue's figures are those of processes that have worked before. Bare Bull drains as many times before its measured drain.` : ' No warm-up drain (BENCH_WARMUP=0): the measured drain is the first of fresh processes.'} Ideal = ${WORKERS} × ${CONCURRENCY} / ${LATENCY_MS / 1000} s = ${IDEAL} tasks/s. Baseline: bare Bull on the same Redis, same job options.`,
    '',
    table(['what', 'tasks', 'drain s', 'tasks/s', 'achieved/ideal'], rows),
    '',
    `pipeline / bare Bull = ${f3(pRate / bRate)}.`,
    '',
    goals,
    '',
    ...(p.cold
      ? [
          `Drains of the same processes in order, ML ${LATENCY_MS} ms: the start-up drain, the settling drains (at least ${SETTLE_MIN}, then until the workers' CPU per task fell by less than ${SETTLE_DROP * 100} % from the drain before, at most ${SETTLE_MAX}), the measured drain.`,
          '',
          table(
            ['drain', 'drain s', 'tasks/s', "workers' CPU ms per task", 'whole-system CPU ms per task'],
            [p.cold, ...p.settling, p.slow].map((ph, i, all) => [
              i === 0 ? 'start-up (fresh processes)' : i === all.length - 1 ? '**measured**' : `settling ${i}`,
              f2(ph.seconds),
              f1(ph.completed / ph.seconds),
              f2(workerCpuPerTask(ph)),
              f2(sysPerTask(ph)),
            ]),
          ),
          '',
        ]
      : []),
    '',
    `ML stub calls ${p.stubCalls}; events at the client: ${events}. api RSS after both drains ${f1(p.apiRssAfterMiB)} MiB.`,
    '',
    phaseReport(p.slow, IDEAL),
    '',
    phaseReport(p.instant),
    '',
    ...(p.cold ? [phaseReport(p.cold, IDEAL), ''] : []),
    '### bare Bull baseline',
    '',
    `Bare Bull's measured drains: sleep ${LATENCY_MS} ms, then fresh processes (as many drains before) with a handler that answers at once.`,
    '',
    table(['process', 'CPU s', 'CPU ms per task', 'CPU ms per task, answering at once'], bareCpu),
  ].join('\n');
  let profile = '';
  if (PROFILE) {
    for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const s = summariseCpuProfile(path.join(profDir, f));
      profile += `\nCPU profile of one worker (${f}, whole process life incl. start-up, ${f1(s.totalMs)} ms non-idle):\n\n`;
      profile += table(['where (self time)', 'ms', '%'], s.byPlace.map(([k, v]) => [k, f1(v), f1((100 * v) / s.totalMs)])) + '\n\n';
      profile += table(['function (self time)', 'ms'], s.byFunction.map(([k, v]) => [k.replace(/\|/g, '/'), f1(v)])) + '\n';
      break;
    }
    console.log(body + '\n' + profile);
    writeResults('pipeline-profile', 'Pipeline worker CPU profile', invocation(process.env.BENCH_BUILD), body + '\n' + profile);
    return;
  }
  console.log('\n' + body);
  writeResults('pipeline', 'Pipeline drain throughput', invocation(process.env.BENCH_BUILD), body);
});
