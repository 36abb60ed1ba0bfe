/**
 * Enqueue side:
 *  (a) throughput and latency of real enqueues (`POST /api/images/:id/segmentation`, a different
 *      image per request) with autocannon against one `api` process, vs `GET /api/health/live`;
 *  (b) latency of a single enqueue (the app's band queue `add` directly, and the HTTP route) at queue
 *      depth ≈0 vs 100 000 waiting jobs, for the most urgent and least urgent priority and with
 *      priorities disabled; beside it, the same for one Bull queue with Bull priorities (the O(n)
 *      prioritised insert the band queues replace);
 *  (c) RSS of the api and worker processes idle and under load (VmRSS from /proc);
 *  (d) Redis memory per queued task (10 000 tasks through the batch route).
 *
 *   node dist/bench/enqueue/run.js
 */
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import Bull from 'bull';
import Redis from 'ioredis';
import {
  adminToken,
  Backend,
  benchEnv,
  f1,
  f2,
  f3,
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
import { PRIORITY_BANDS, bandOf, bandQueueName } from '../../src/queue/queue.constants';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONNECTIONS = 10;
const HEALTH_SECONDS = 6;
const DEPTH = Number(process.env.BENCH_DEPTH ?? 100_000);
const LAT_SAMPLES = Number(process.env.BENCH_LAT_SAMPLES ?? 200);
/** Direct adds are ~0.1 ms: more samples, so their p99 is not one stray sample. */
const ADD_SAMPLES = Number(process.env.BENCH_ADD_SAMPLES ?? 2000);
const MEM_TASKS = 10_000;
const USERS = 10;
const MB = 1024 * 1024;

const jobOpts = (jobId: string, priority: number | undefined): Bull.JobOptions => ({
  jobId,
  priority,
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 5000 },
});

async function sampleRss(b: Backend, stop: () => boolean, everyMs = 200): Promise<number> {
  let peak = 0;
  while (!stop()) {
    peak = Math.max(peak, await b.rss().catch(() => 0));
    await sleep(everyMs);
  }
  return peak;
}

async function timeSeries(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

runMain(async () => {
  const env = benchEnv('enq');
  const stub = await startTimedStub(50);
  const QA = env.queue('a');
  const QB = env.queue('b');
  const QC = env.queue('c');
  const QR = env.queue('r');
  const apiA = await startBackend(env, 'api', { QUEUE_NAME: QA, ML_SERVICE_URL: stub.url }, 'apiA');
  const [worker, apiB, apiC] = await Promise.all([
    startBackend(env, 'worker', { QUEUE_NAME: QA, ML_SERVICE_URL: stub.url, QUEUE_CONCURRENCY: '10' }, 'worker'),
    startBackend(env, 'api', { QUEUE_NAME: QB, ML_SERVICE_URL: stub.url }, 'apiB'),
    startBackend(env, 'api', { QUEUE_NAME: QC, ML_SERVICE_URL: stub.url, QUEUE_PRIORITY_ENABLED: 'false' }, 'apiC'),
  ]);
  const admin = await adminToken(apiA, env);
  for (const api of [apiA, apiB, apiC]) await json(api.request('/api/queue/pause', { method: 'POST', token: admin }), 200);
  const pg = await env.pg();
  const u1 = await register(apiA);
  const u2 = await register(apiA);
  await json(apiA.request(`/api/admin/users/${u2.id}`, { method: 'PATCH', token: admin, json: { isPremium: true } }), 200);
  const idsA = await seedImages(apiA, env, pg, u1.token, u1.id, REQUESTS + MEM_TASKS);
  const idsB = await seedImages(apiA, env, pg, u2.token, u2.id, LAT_SAMPLES * 6 + 10);
  // Same load spread over USERS users (the per-user advisory lock serialises one user's enqueues).
  const many: Array<{ token: string; ids: number[] }> = [];
  for (let i = 0; i < USERS; i++) {
    const u = await register(apiA);
    many.push({ token: u.token, ids: await seedImages(apiA, env, pg, u.token, u.id, Math.ceil(REQUESTS / USERS)) });
  }
  const busy = await waitForQuiet();

  console.log('enqueue bench: processes up, images seeded');
  // (c) idle RSS
  await sleep(2000);
  const idle = { api: await apiA.rss(), worker: await worker.rss() };

  // (a) throughput: health/live, then real enqueues, a different image per request.
  const health = await autocannon({ url: `${apiA.url}/api/health/live`, connections: CONNECTIONS, duration: HEALTH_SECONDS });
  let next = 0;
  const enqIds = idsA.slice(0, REQUESTS);
  let loadDone = false;
  const apiPeak = sampleRss(apiA, () => loadDone);
  const enq = await autocannon({
    url: apiA.url,
    connections: CONNECTIONS,
    amount: REQUESTS,
    headers: { authorization: `Bearer ${u1.token}`, 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        body: '{}',
        setupRequest: (req) => ({ ...req, path: `/api/images/${enqIds[next++ % enqIds.length]}/segmentation` }),
      },
    ],
  });
  let k = 0;
  const enqMany = await autocannon({
    url: apiA.url,
    connections: CONNECTIONS,
    amount: REQUESTS,
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        body: '{}',
        setupRequest: (req) => {
          const i = k++;
          const u = many[i % USERS];
          const id = u.ids[Math.floor(i / USERS) % u.ids.length];
          return { ...req, path: `/api/images/${id}/segmentation`, headers: { ...req.headers, authorization: `Bearer ${u.token}` } };
        },
      },
    ],
  });
  loadDone = true;
  const apiLoadRss = await apiPeak;
  const created = Number((await pg.query(`SELECT count(*) FROM queue_jobs`)).rows[0].count);
  const rate = (r: autocannon.Result) => r.requests.total / r.duration;

  console.log('(a) done');
  // (c) worker under load: let it drain what (a) queued for up to 20 s.
  await json(apiA.request('/api/queue/resume', { method: 'POST', token: admin }), 200);
  let drainDone = false;
  const workerPeak = sampleRss(worker, () => drainDone);
  const drainStart = performance.now();
  let drained = 0;
  while (performance.now() - drainStart < 20_000) {
    drained = Number((await pg.query(`SELECT count(*) FROM queue_jobs WHERE status = 'completed'`)).rows[0].count);
    if (drained >= created) break;
    await sleep(250);
  }
  drainDone = true;
  const workerLoadRss = await workerPeak;
  const drainSeconds = (performance.now() - drainStart) / 1000;
  await json(apiA.request('/api/queue/pause', { method: 'POST', token: admin }), 200);
  for (let i = 0; i < 100; i++) {
    const m = await json<{ active: number }>(apiA.request('/api/queue/metrics', { token: admin }), 200);
    if (m.active === 0) break;
    await sleep(100);
  }

  console.log('(c) done');
  // (d) Redis memory per queued task: 10 000 tasks through the batch route, queue paused.
  const redis = new Redis(REDIS_URL);
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  const queueKeys = PRIORITY_BANDS.flatMap((b) => ['paused', 'wait', 'id'].map((k) => `{${QA}}:${bandQueueName(b)}:${k}`));
  const keysMem = async () => {
    let s = 0;
    for (const k of queueKeys) s += Number((await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0')) ?? 0);
    return s;
  };
  const memIds = idsA.slice(REQUESTS, REQUESTS + MEM_TASKS);
  const mem0 = await usedMemory();
  const lists0 = await keysMem();
  const jobIds: string[] = [];
  const jobKeys: string[] = [];
  for (let i = 0; i < memIds.length; i += 500) {
    const b = await json<{ tasks: Array<{ taskId: string; priority: number }> }>(apiA.request('/api/segmentation/batch', { token: u1.token, json: { imageIds: memIds.slice(i, i + 500) } }), 202);
    jobIds.push(...b.tasks.map((t) => t.taskId));
    jobKeys.push(...b.tasks.map((t) => `{${QA}}:${bandQueueName(bandOf(t.priority, true))}:${t.taskId}`));
  }
  const mem1 = await usedMemory();
  const lists1 = await keysMem();
  let jobHashes = 0;
  for (let i = 0; i < jobKeys.length; i += 1000) {
    const p = redis.pipeline();
    for (const key of jobKeys.slice(i, i + 1000)) p.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    for (const [, v] of (await p.exec()) ?? []) jobHashes += Number(v ?? 0);
  }
  const perTaskUsed = (mem1 - mem0) / jobIds.length;
  const perTaskKeys = (jobHashes + lists1 - lists0) / jobIds.length;

  console.log('(d) done');
  // (b) enqueue latency at depth ≈0 and DEPTH: the app's band queues (apiB's QB, apiC's QC, filled as
  // the app fills them: one FIFO Bull queue per contract priority) and, for reference, the previous
  // design: one Bull queue with Bull priorities (QR, used by no process).
  const band = (q: string, b: number) => new Bull(bandQueueName(b), REDIS_URL, { prefix: `{${q}}` });
  const bandsB = new Map(PRIORITY_BANDS.map((b) => [b, band(QB, b)]));
  const fifoC = band(QC, bandOf(5, false)); // QUEUE_PRIORITY_ENABLED=false: every job in one band
  const qR = new Bull('segmentation', REDIS_URL, { prefix: `{${QR}}` });
  const all = [...bandsB.values(), fifoC, qR];
  await Promise.all(all.map((q) => q.isReady()));
  await Promise.all(all.map((q) => q.pause())); // apiB/apiC's bands are already paused by the admin route
  let imgNext = 0;
  const data = (i: number) => ({ taskId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, imageId: i, userId: 1 });
  const series = async (label: string) => {
    const band10 = await timeSeries(ADD_SAMPLES, (i) => bandsB.get(10)!.add('segment', data(i), jobOpts(`${label}-p10-${i}`, undefined)));
    const band1 = await timeSeries(ADD_SAMPLES, (i) => bandsB.get(1)!.add('segment', data(i), jobOpts(`${label}-p1-${i}`, undefined)));
    const ref1 = await timeSeries(ADD_SAMPLES, (i) => qR.add('segment', data(i), jobOpts(`${label}-r1-${i}`, 1)));
    const ref10 = await timeSeries(ADD_SAMPLES, (i) => qR.add('segment', data(i), jobOpts(`${label}-r10-${i}`, 10)));
    const http = (api: Backend, priority: number) => async () => {
      const id = idsB[imgNext++];
      await json(api.request(`/api/images/${id}/segmentation`, { token: u2.token, json: { priority } }), 202);
    };
    const http10 = await timeSeries(LAT_SAMPLES, http(apiB, 10));
    const http1 = await timeSeries(LAT_SAMPLES, http(apiB, 1));
    const httpNone = await timeSeries(LAT_SAMPLES, http(apiC, 1)); // priorities disabled
    return { band10, band1, ref1, ref10, http10, http1, httpNone };
  };
  const d0 = await series('d0');
  console.log('(b) depth 0 done');
  const tFill = performance.now();
  // Priorities 1..10 evenly. The bands get DEPTH/10 jobs each; the reference queue gets them added most
  // urgent first (each insert then lands next to its priority class without walking the list, and the
  // final list is the one random order would give).
  const prios = Array.from({ length: DEPTH }, (_, i) => 1 + (i % 10)).sort((a, b) => a - b);
  for (let i = 0; i < DEPTH; i += 1000) {
    const chunk = prios.slice(i, i + 1000);
    await qR.addBulk(chunk.map((p, k) => ({ name: 'segment', data: data(i + k), opts: jobOpts(`fill-${i + k}`, 11 - p) })));
    await fifoC.addBulk(chunk.map((_, k) => ({ name: 'segment', data: data(i + k), opts: jobOpts(`fill-${i + k}`, undefined) })));
    for (const b of PRIORITY_BANDS) {
      const ofBand = chunk.flatMap((p, k) => (p === b ? [i + k] : []));
      if (ofBand.length > 0) {
        await bandsB.get(b)!.addBulk(ofBand.map((n) => ({ name: 'segment', data: data(n), opts: jobOpts(`fill-${n}`, undefined) })));
      }
    }
  }
  const fillSeconds = (performance.now() - tFill) / 1000;
  const depthOf = async (qs: Bull.Queue[]) => {
    let n = 0;
    for (const q of qs) {
      const c = (await q.getJobCounts()) as Bull.JobCounts & { paused: number };
      n += c.paused + c.waiting;
    }
    return n;
  };
  const depthB = await depthOf([...bandsB.values()]);
  const depthC = await depthOf([fifoC]);
  const depthR = await depthOf([qR]);
  const dN = await series('dN');
  await Promise.all(all.map((q) => q.close()));
  redis.disconnect();

  // ---- report
  const aTable = table(
    ['route (1 api process, 10 connections)', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx'],
    [
      ['GET /api/health/live', health.requests.total, f1(rate(health)), health.latency.p50, health.latency.p99, health.non2xx],
      ['POST /api/images/:id/segmentation (new task each), 1 user', enq.requests.total, f1(rate(enq)), enq.latency.p50, enq.latency.p99, enq.non2xx],
      [`same, spread over ${USERS} users`, enqMany.requests.total, f1(rate(enqMany)), enqMany.latency.p50, enqMany.latency.p99, enqMany.non2xx],
    ],
  );
  const aRatio = `enqueue/health (1 user): throughput ${f3(rate(enq) / rate(health))}, p99 ${f1(enq.latency.p99 / health.latency.p99)}×; ${USERS} users: throughput ${f3(rate(enqMany) / rate(health))}, p99 ${f1(enqMany.latency.p99 / health.latency.p99)}× (${created} tasks recorded in PostgreSQL for ${2 * REQUESTS} requests)`;
  const row = (name: string, a: number[], b: number[]) => [name, f2(pct(a, 50)), f2(pct(a, 99)), f2(pct(b, 50)), f2(pct(b, 99)), f2(pct(b, 50) / pct(a, 50)), f2(pct(b, 99) / pct(a, 99))];
  const bTable = table(
    ['single enqueue', 'depth≈0 p50 ms', 'p99 ms', `depth ${DEPTH} p50 ms`, 'p99 ms', 'ratio p50', 'ratio p99'],
    [
      row('app: band queue add, contract priority 10 (most urgent band)', d0.band10, dN.band10),
      row('app: band queue add, contract priority 1 (least urgent band)', d0.band1, dN.band1),
      row('app: HTTP route, contract priority 10', d0.http10, dN.http10),
      row('app: HTTP route, contract priority 1', d0.http1, dN.http1),
      row('app: HTTP route, QUEUE_PRIORITY_ENABLED=false', d0.httpNone, dN.httpNone),
      row('reference: one Bull queue with Bull priorities, priority 1 (most urgent)', d0.ref1, dN.ref1),
      row('reference: same queue, priority 10 (least urgent)', d0.ref10, dN.ref10),
    ],
  );
  const appRows = ['band10', 'band1', 'http10', 'http1', 'httpNone'] as const;
  const worst = Math.max(...appRows.map((k) => pct(dN[k], 50) / pct(d0[k], 50)));
  const worst99 = Math.max(...appRows.map((k) => pct(dN[k], 99) / pct(d0[k], 99)));
  const cTable = table(
    ['process', 'RSS idle MiB', 'RSS under load (peak) MiB', 'load'],
    [
      ['api', f1(idle.api / MB), f1(apiLoadRss / MB), `autocannon enqueue, ${CONNECTIONS} connections`],
      ['worker', f1(idle.worker / MB), f1(workerLoadRss / MB), `draining (10 concurrent jobs, ML 50 ms): ${drained} tasks in ${f1(drainSeconds)} s`],
    ],
  );
  const body = [
    '### (a) Enqueue throughput vs health',
    '',
    `autocannon, ${CONNECTIONS} connections; health for ${HEALTH_SECONDS} s, then ${REQUESTS} enqueues, each request on a different image of one (non-premium) user, then ${REQUESTS} more spread round-robin over ${USERS} users (queue paused, so nothing drains meanwhile).`,
    '',
    aTable,
    '',
    aRatio + '.',
    '',
    `### (b) Single enqueue latency at depth ≈0 vs ${DEPTH}`,
    '',
    `Sequential enqueues per row and depth (${ADD_SAMPLES} for direct adds, ${LAT_SAMPLES} through HTTP), queues paused. Depth filled with \`addBulk\` (chunks of 1000, the app's job options, contract priorities 1..10 evenly) in ${f1(fillSeconds)} s; depths after filling: the app's band queues ${depthB} (${DEPTH / 10} per band), the single band of QUEUE_PRIORITY_ENABLED=false ${depthC}, the reference prioritised queue ${depthR}. HTTP rows: a premium user, \`POST /api/images/:id/segmentation\` on a fresh image each time, against an api process whose queue is the filled one. The reference rows measure the design the app no longer uses (Bull 4's own priorities: a prioritised insert walks the wait list) in the same run.`,
    '',
    bTable,
    '',
    `Target "within 2× at depth ${DEPTH}" (the app's rows, p50): ${worst <= 2 ? 'met' : 'NOT met'}, worst ratio ${f2(worst)}× (worst p99 ratio ${f2(worst99)}×).`,
    '',
    '### (c) RSS (VmRSS of each process, from /proc)',
    '',
    cTable,
    '',
    '### (d) Redis memory per queued task',
    '',
    table(
      ['measure', 'bytes per queued task'],
      [
        [`INFO memory used_memory delta / ${jobIds.length} (whole Redis; other users of this Redis add noise)`, f1(perTaskUsed)],
        ['MEMORY USAGE of the job hashes + growth of the queue\'s list/zset keys', f1(perTaskKeys)],
      ],
    ),
    '',
    `used_memory ${f1(mem0 / MB)} → ${f1(mem1 / MB)} MiB for ${jobIds.length} tasks queued through \`POST /api/segmentation/batch\` (500 ids per call).`,
    '',
    `Machine load by others before the run: ${f2(busy)} busy cores.`,
  ].join('\n');
  console.log('\n' + body);
  writeResults('enqueue', 'Enqueue throughput, latency vs depth, RSS, Redis memory', invocation(process.env.BENCH_BUILD), body);
});
