/**
 * QUEUE_FAIRNESS=user against none, on the real Redis, with the app's own code (fair-lines.ts for the
 * producer's add, BandConsumer for the pop):
 *  (a) latency of one enqueue at depth 0 and at depth 100 000 queued over 1 000 users (user), beside
 *      Bull's plain add to the band's wait list (none) at the same depths;
 *  (b) latency of one pop (the consumer's Lua call) with 10, 1 000 and 10 000 users queued;
 *  (c) users queueing 2 000, 200, 20 and 2 tasks at one priority (in that order, the largest first),
 *      consumed by one BandConsumer with 10 slots and a 50 ms "ML call" each: when each user's last
 *      task completes (position among all completions, seconds from the start), user vs none.
 *
 *   node dist/bench/fairness/run.js
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import Bull, { Job, Queue } from 'bull';
import Redis from 'ioredis';
import { deleteRedisKeys, f1, f2, f3, invocation, pct, REDIS_URL, runMain, sleep, table, writeResults } from '../common/harness';
import { PRIORITY_BANDS, bandQueueName } from '../../src/queue/queue.constants';
import { Fairness, FairJob, PopPlan, fairAdd, fairPop, fairPopArgs } from '../../src/queue/fair-lines';
import { BandConsumer } from '../../src/queue/worker/band-consumer';

const DEPTH = Number(process.env.BENCH_DEPTH ?? 100_000);
const DEPTH_USERS = Number(process.env.BENCH_DEPTH_USERS ?? 1000);
const ADD_SAMPLES = Number(process.env.BENCH_ADD_SAMPLES ?? 2000);
const POP_SAMPLES = Number(process.env.BENCH_POP_SAMPLES ?? 2000);
const ML_MS = Number(process.env.BENCH_ML_MS ?? 50);
const SLOTS = Number(process.env.BENCH_SLOTS ?? 10);
const MIX = [2000, 200, 20, 2];

type Data = { taskId: string; imageId: number; userId: number };
const opts: Bull.JobOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600, count: 5000 },
};

const tag = `bench_fair_${randomBytes(4).toString('hex')}`;
const client = new Redis(REDIS_URL, { enableAutoPipelining: true });
const subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
client.setMaxListeners(0);
subscriber.setMaxListeners(0);
const opened: Queue[] = [];

/** The ten band queues of one deployment named `name`, built as QueueModule builds them. */
async function bands(name: string): Promise<Queue<Data>[]> {
  const qs = PRIORITY_BANDS.map(
    (b) =>
      new Bull<Data>(bandQueueName(b), {
        prefix: `{${tag}_${name}}`,
        settings: { lockDuration: 30_000, lockRenewTime: 15_000, stalledInterval: 30_000, maxStalledCount: 2 },
        createClient: (type) =>
          (type === 'client' ? client : type === 'subscriber' ? subscriber : new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false })) as never,
      }),
  );
  await Promise.all(qs.map((q) => q.isReady()));
  opened.push(...(qs as Queue[]));
  return qs;
}
const p1 = (qs: Queue<Data>[]) => qs[PRIORITY_BANDS.indexOf(1)];
let seq = 0;
const job = (userId: number): FairJob => {
  seq += 1;
  return { jobId: `j${seq}`, name: 'segment', data: { taskId: `t${seq}`, imageId: seq, userId }, opts: { ...opts, jobId: `j${seq}` } };
};

/** Fills band p1 with `depth` jobs of users `userOf(i)` (default: spread over `users` round-robin), 1000 per batch. */
async function fill(q: Queue<Data>, mode: Fairness, depth: number, users: number, userOf = (i: number) => (i % users) + 1): Promise<void> {
  for (let i = 0; i < depth; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, depth - i) }, (_, k) => job(userOf(i + k)));
    if (mode === 'user') await fairAdd(client, q as Queue, batch);
    else await q.addBulk(batch.map((j) => ({ name: j.name, data: j.data as Data, opts: j.opts })));
  }
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

const addOne = (q: Queue<Data>, mode: Fairness, userId: number) => {
  const j = job(userId);
  return mode === 'user' ? fairAdd(client, q as Queue, [j]) : q.add('segment', j.data as Data, j.opts);
};

/** (c): the mix queued in order, consumed with SLOTS slots of ML_MS each. */
async function completion(mode: Fairness) {
  const qs = await bands(`mix_${mode}`);
  const q = p1(qs);
  await Promise.all(qs.map((b) => b.pause())); // queued before anything is taken
  for (const [u, count] of MIX.entries()) await fill(q, mode, count, 1, () => u + 1); // user u+1's batch
  const total = MIX.reduce((a, b) => a + b, 0);
  const done: Array<{ user: number; at: number }> = [];
  const consumer = new BandConsumer<Data>(qs, client, { concurrency: SLOTS, jobName: 'segment', idlePollMs: 1000, retryDelayMs: 200, fairness: mode });
  let t0 = 0;
  await consumer.start(async (j: Job<Data>) => {
    await sleep(ML_MS);
    done.push({ user: j.data.userId, at: performance.now() - t0 });
  });
  t0 = performance.now();
  await Promise.all(qs.map((b) => b.resume()));
  while (done.length < total) await sleep(20);
  await consumer.stop();
  return MIX.map((count, u) => {
    let last = -1;
    done.forEach((d, i) => {
      if (d.user === u + 1) last = i;
    });
    return { count, position: last + 1, seconds: done[last].at / 1000 };
  });
}
runMain(async () => {
  try {
    // Warm-up (JIT, script cache, connections) on a queue of its own, so depth 0 is not the cold start.
    {
      const qs = await bands('warm');
      await Promise.all(qs.map((b) => b.pause()));
      for (let i = 0; i < 1000; i++) await addOne(p1(qs), i % 2 ? 'user' : 'none', (i % 10) + 1);
      for (const mode of ['user', 'none'] as Fairness[]) for (let i = 0; i < 500; i++) await fairPop(client, fairPopArgs(qs as Queue[], mode));
    }
    // (a) enqueue latency vs depth.
    const addRows: Array<Array<string | number>> = [];
    const addRatio: Record<Fairness, number> = { user: 0, none: 0 };
    for (const mode of ['user', 'none'] as Fairness[]) {
      const qs = await bands(`add_${mode}`);
      const q = p1(qs);
      await Promise.all(qs.map((b) => b.pause())); // nothing consumes
      const at0 = await timeSeries(ADD_SAMPLES, (i) => addOne(q, mode, (i % DEPTH_USERS) + 1));
      const t = performance.now();
      await fill(q, mode, DEPTH, DEPTH_USERS);
      const fillS = (performance.now() - t) / 1000;
      const atDepth = await timeSeries(ADD_SAMPLES, (i) => addOne(q, mode, (i % DEPTH_USERS) + 1));
      addRatio[mode] = pct(atDepth, 50) / pct(at0, 50);
      addRows.push(
        [mode, 'depth 0', f3(pct(at0, 50)), f3(pct(at0, 99)), '—'],
        [mode, `depth ${DEPTH + ADD_SAMPLES} over ${DEPTH_USERS} users (filled in ${f1(fillS)} s)`, f3(pct(atDepth, 50)), f3(pct(atDepth, 99)), `${f2(addRatio[mode])}×`],
      );
    }

    // (b) pop latency vs number of users: the sets are popped in turn, sample by sample (side by side
    // under the same load), with Bull's wait list (none) as the fourth.
    const popRows: Array<Array<string | number>> = [];
    const sets: Array<{ label: string | number; args: PopPlan; samples: number[] }> = [];
    for (const users of [10, 1000, 10_000]) {
      const qs = await bands(`pop_${users}`);
      await fill(p1(qs), 'user', users * Math.max(1, Math.ceil((2 * POP_SAMPLES) / users)), users);
      sets.push({ label: users, args: fairPopArgs(qs as Queue[], 'user'), samples: [] });
    }
    {
      const qs = await bands('pop_none');
      await fill(p1(qs), 'none', POP_SAMPLES * 2, 10);
      sets.push({ label: 'none (Bull wait list)', args: fairPopArgs(qs as Queue[], 'none'), samples: [] });
    }
    for (let i = 0; i < POP_SAMPLES; i++) {
      for (const set of sets) {
        const t = performance.now();
        await fairPop(client, set.args);
        set.samples.push(performance.now() - t);
      }
    }
    const base = pct(sets[0].samples, 50);
    for (const set of sets) popRows.push([set.label, f3(pct(set.samples, 50)), f3(pct(set.samples, 99)), `${f2(pct(set.samples, 50) / base)}×`]);

    // (c) the mix.
    const fair = await completion('user');
    const fifo = await completion('none');
    const mixRows = MIX.map((count, u) => [
      `user ${u + 1} (${count} tasks, queued ${['1st', '2nd', '3rd', '4th'][u]})`,
      `${fair[u].position} / ${f1(fair[u].seconds)} s`,
      `${fifo[u].position} / ${f1(fifo[u].seconds)} s`,
    ]);
    const total = MIX.reduce((a, b) => a + b, 0);

    const out = [
      `(a) One enqueue (ms, ${ADD_SAMPLES} sequential adds per row, band p1, queue paused). user = the producer's fair add (job hash + user list + ring + count, one Lua call); none = Bull's add to the band's wait list.`,
      '',
      table(['mode', 'depth', 'p50 ms', 'p99 ms', 'p50 vs depth 0'], addRows),
      '',
      `(b) One pop (ms, ${POP_SAMPLES} calls of the consumer's Lua pop across the 10 bands per row, band p1 holding the jobs, the rows popped in turn sample by sample): the number of users with queued work does not change its cost.`,
      '',
      table(['users queued', 'p50 ms', 'p99 ms', 'p50 vs 10 users'], popRows),
      '',
      `(c) Users queue ${MIX.join(', ')} tasks at one priority, in that order, while paused; then one BandConsumer with ${SLOTS} slots, each task a ${ML_MS} ms wait (the ML call). When each user's last task completes: position among the ${total} completions / seconds from resume.`,
      '',
      table(['user', 'QUEUE_FAIRNESS=user', 'QUEUE_FAIRNESS=none'], mixRows),
    ].join('\n');
    console.log(out);
    writeResults('fairness', 'Fair turns between users (QUEUE_FAIRNESS)', invocation(), out);
  } finally {
    await Promise.all(opened.map((q) => q.close().catch(() => undefined)));
    client.disconnect();
    subscriber.disconnect();
    await deleteRedisKeys(`*${tag}*`);
  }
});
