/**
 * Pipeline drain throughput: 2 `worker` processes × QUEUE_CONCURRENCY=10 against an ML stub that
 * answers after 50 ms, versus the ideal 2 × 10 / 0.05 s = 400 tasks/s, and versus a bare Bull queue
 * (same Redis, own queue name, 2 forked processes × 10, processor sleeps 50 ms) with the same number
 * of jobs and the same job options, in the same run.
 *
 *   node dist/bench/pipeline/run.js            # BENCH_TASKS=2000 by default
 */
import { fork, ChildProcess } from 'node:child_process';
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
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { cpuDelta, cpuSnapshot, metric, scrape, summariseCpuProfile, waitForQuiet } from '../common/probe';

const TASKS = Number(process.env.BENCH_TASKS ?? 2000);
const WORKERS = 2;
const CONCURRENCY = 10;
const LATENCY_MS = 50;
const IDEAL = (WORKERS * CONCURRENCY) / (LATENCY_MS / 1000);
const DRAIN_TIMEOUT_MS = 90_000;
/** BENCH_PROFILE=1: the workers run with --cpu-prof; the profile's self time is summarised. */
const PROFILE = process.env.BENCH_PROFILE === '1';
const profDir = PROFILE ? mkdtempSync(path.join(os.tmpdir(), 'bench-prof-')) : '';

interface WorkerFigures {
  jobs: number;
  jobAvgMs: number;
  mlAvgMs: number;
  dbQueries: number;
  dbQueryAvgMs: number;
  poolAcquireAvgMs: number;
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
  };
}

async function pipeline() {
  const env = benchEnv('pipe');
  const queueName = env.queue('seg');
  const stub = await startTimedStub(LATENCY_MS);
  const common = { QUEUE_NAME: queueName, ML_SERVICE_URL: stub.url };
  // The api first: it creates the database and runs the migrations.
  const api = await startBackend(env, 'api', common, 'api');
  const workers: Backend[] = [];
  const prof = PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  for (let i = 0; i < WORKERS; i++)
    workers.push(await startBackend(env, 'worker', { ...common, QUEUE_CONCURRENCY: String(CONCURRENCY) }, `worker${i + 1}`, prof));
  const admin = await adminToken(api, env);
  await json(api.request('/api/queue/pause', { method: 'POST', token: admin }), 200);

  const pg = await env.pg();
  const user = await register(api);
  const ids = await seedImages(api, env, pg, user.token, user.id, TASKS);

  // Enqueue through the batch route, 500 ids per call, while the queue is paused.
  const tEnq = performance.now();
  for (let i = 0; i < ids.length; i += 500) {
    const b = await json<{ tasks: unknown[] }>(api.request('/api/segmentation/batch', { token: user.token, json: { imageIds: ids.slice(i, i + 500) } }), 202);
    if (b.tasks.length !== Math.min(500, ids.length - i)) throw new Error('batch returned a short task list');
  }
  const enqSeconds = (performance.now() - tEnq) / 1000;
  const m0 = await json<{ waiting: number; paused: number; isPaused: boolean }>(api.request('/api/queue/metrics', { token: admin }), 200);
  const queued = m0.waiting + m0.paused;
  if (queued < TASKS) throw new Error(`expected ${TASKS} queued jobs, Bull has ${queued}`);
  console.log(`enqueued ${TASKS} tasks via the batch route in ${f2(enqSeconds)} s (${f1(TASKS / enqSeconds)} tasks/s); paused=${m0.isPaused}`);

  const busyOthers = await waitForQuiet();
  const before = await Promise.all(workers.map((w) => scrape(w.url)));
  const pids: Record<string, number> = { api: api.pid };
  workers.forEach((w) => (pids[w.name] = w.pid));
  const cpu0 = cpuSnapshot(pids);

  const t0 = performance.now();
  await json(api.request('/api/queue/resume', { method: 'POST', token: admin }), 200);
  let completed = 0;
  let failed = 0;
  for (;;) {
    const { rows } = await pg.query<{ done: number; bad: number }>(
      `SELECT count(*) FILTER (WHERE status = 'completed')::int AS done,
              count(*) FILTER (WHERE status IN ('failed','cancelled'))::int AS bad FROM queue_jobs`,
    );
    completed = rows[0].done;
    failed = rows[0].bad;
    if (completed + failed >= TASKS) break;
    if (performance.now() - t0 > DRAIN_TIMEOUT_MS) throw new Error(`drain timed out: ${completed}/${TASKS} completed`);
    await sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuSnapshot(pids);
  const after = await Promise.all(workers.map((w) => scrape(w.url)));
  const span = await pg.query<{ s: number; first_ms: number }>(
    `SELECT EXTRACT(EPOCH FROM max(processing_completed_at) - min(processing_started_at))::float AS s,
            EXTRACT(EPOCH FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY processing_completed_at - processing_started_at))::float * 1000 AS first_ms
       FROM queue_jobs`,
  );
  const perWorker = workers.map((w, i) => ({ name: w.name, ...workerFigures(before[i], after[i]) }));
  await api.request('/api/queue/pause', { method: 'POST', token: admin }).catch(() => undefined);
  for (const b of [api, ...workers]) await b.stop();
  return { completed, failed, seconds, dbSpan: span.rows[0].s, medianRowMs: span.rows[0].first_ms, perWorker, cpu: cpuDelta(cpu0, cpu1), busyOthers, stubCalls: stub.calls, enqSeconds };
}

async function bare() {
  const env = benchEnv('bare');
  const name = 'segmentation';
  const prefix = `{${env.queue('bare')}}`;
  const q = new Bull(name, REDIS_URL, { prefix });
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
  for (let i = 0; i < TASKS; i += 1000) {
    const chunk = Array.from({ length: Math.min(1000, TASKS - i) }, (_, k) => ({ name: 'segment', data: { taskId: `t${i + k}`, imageId: i + k, userId: 1 }, opts: opts(i + k) }));
    await q.addBulk(chunk);
  }
  const children: ChildProcess[] = [];
  const done = new Map<number, number>();
  const ready: Promise<void>[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const c = fork(path.join(__dirname, 'bare-worker.js'), [REDIS_URL, prefix, name, String(CONCURRENCY), String(LATENCY_MS)]);
    children.push(c);
    ready.push(new Promise((r) => c.on('message', (m: { ready?: boolean; done?: number }) => (m.ready ? r() : done.set(i, m.done ?? 0)))));
  }
  await Promise.all(ready);
  await sleep(500); // let the blocking clients connect
  const busyOthers = await waitForQuiet();
  const pids: Record<string, number> = {};
  children.forEach((c, i) => (pids[`bare${i + 1}`] = c.pid!));
  const cpu0 = cpuSnapshot(pids);
  const t0 = performance.now();
  await q.resume();
  const sum = () => [...done.values()].reduce((a, b) => a + b, 0);
  while (sum() < TASKS) {
    if (performance.now() - t0 > DRAIN_TIMEOUT_MS) throw new Error(`bare drain timed out: ${sum()}/${TASKS}`);
    await sleep(2);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = cpuSnapshot(pids);
  for (const c of children) c.send({ stop: true });
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await q.close();
  return { seconds, cpu: cpuDelta(cpu0, cpu1), busyOthers };
}

runMain(async () => {
  console.log(`pipeline bench: ${TASKS} tasks, ${WORKERS} workers × ${CONCURRENCY}, ML ${LATENCY_MS} ms, ideal ${IDEAL} tasks/s`);
  const p = await pipeline();
  console.log(`pipeline: ${p.completed} completed in ${f2(p.seconds)} s = ${f1(p.completed / p.seconds)} tasks/s (${f3(p.completed / p.seconds / IDEAL)} of ideal)`);
  const b = await bare();
  const pRate = p.completed / p.seconds;
  const bRate = TASKS / b.seconds;
  const rows = [
    ['spheroseg pipeline (2 worker processes × 10)', TASKS, f2(p.seconds), f1(pRate), f3(pRate / IDEAL)],
    ['bare Bull (2 forked processes × 10, sleep 50 ms)', TASKS, f2(b.seconds), f1(bRate), f3(bRate / IDEAL)],
  ];
  const main = table(['what', 'tasks', 'drain s', 'tasks/s', 'achieved/ideal'], rows);
  const ratio = `pipeline / bare Bull = ${f3(pRate / bRate)}; target pipeline ≥ 0.9 × ideal: ${pRate / IDEAL >= 0.9 ? 'met' : 'NOT met'}`;
  const perJob = (s: number) => f2((s * 1000) / TASKS);
  const cpuRows = p.cpu.map(([k, v]) => [k, f2(v), perJob(v)]);
  const bareCpu = b.cpu.map(([k, v]) => [k, f2(v), perJob(v)]);
  const wk = table(
    ['worker', 'jobs', 'job avg ms', 'ML call avg ms', 'DB queries/job', 'DB query avg ms', 'pool acquire avg ms'],
    p.perWorker.map((w) => [w.name, w.jobs, f1(w.jobAvgMs), f1(w.mlAvgMs), f1(w.dbQueries / w.jobs), f2(w.dbQueryAvgMs), f2(w.poolAcquireAvgMs)]),
  );
  const body = [
    `Ideal = ${WORKERS} × ${CONCURRENCY} / ${LATENCY_MS / 1000} s = ${IDEAL} tasks/s. ${TASKS} tasks enqueued through \`POST /api/segmentation/batch\` (500 ids per call) with the queue paused (admin pause), timed from \`POST /api/queue/resume\` until PostgreSQL has every task \`completed\` (polled every 10 ms). Baseline: bare Bull, same Redis, same job options, jobs added with \`addBulk\` while paused, timed from \`queue.resume()\`.`,
    '',
    main,
    '',
    ratio + '.',
    '',
    `Completed ${p.completed}, failed/cancelled ${p.failed}; ML stub calls ${p.stubCalls}. DB span (first processing_started_at → last processing_completed_at) ${f2(p.dbSpan)} s; median task row processing time ${f1(p.medianRowMs)} ms. Enqueue of the ${TASKS} tasks through the batch route took ${f2(p.enqSeconds)} s (${f1(TASKS / p.enqSeconds)} tasks/s).`,
    '',
    'Where the time goes, from each worker\'s own `/api/metrics` (deltas over the drain):',
    '',
    wk,
    '',
    'CPU seconds during the drain (from /proc; the machine total includes anything else running on the machine):',
    '',
    table(['pipeline: process', 'CPU s', 'CPU ms per task'], cpuRows),
    '',
    table(['bare Bull: process', 'CPU s', 'CPU ms per task'], bareCpu),
    '',
    `Machine load by others just before each drain (busy cores of ${os.availableParallelism()}, measured over 1 s): pipeline ${f2(p.busyOthers)}, bare Bull ${f2(b.busyOthers)}.`,
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
    console.log(profile);
    writeResults('pipeline-profile', 'Pipeline worker CPU profile', invocation(process.env.BENCH_BUILD), body + '\n' + profile);
    return;
  }
  console.log('\n' + body);
  writeResults('pipeline', 'Pipeline drain throughput', invocation(process.env.BENCH_BUILD), body);
});
