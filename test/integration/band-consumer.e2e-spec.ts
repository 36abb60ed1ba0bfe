import Bull, { Job, Queue } from 'bull';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { BandConsumer } from '../../src/queue/worker/band-consumer';
import { PRIORITY_BANDS, bandQueueName } from '../../src/queue/queue.constants';
import { Fairness, fairCount } from '../../src/queue/fair-lines';

/**
 * The worker's consumer of the priority bands, on the real Redis of this run: one Bull queue per band
 * sharing one command connection (as QueueModule builds them), consumed most urgent band first. Every
 * case runs under both QUEUE_FAIRNESS settings: the jobs here are added with Bull's own `add` (into the
 * band's wait list, as re-entries and jobs from `none` arrive) and carry no user, so `user` takes them
 * in the same order through its user lists. Turns between users: band-consumer-fairness.e2e-spec.ts.
 */
describe.each<Fairness>(['none', 'user'])('BandConsumer (real Redis), QUEUE_FAIRNESS=%s', (fairness) => {
  const REDIS_URL = process.env.REDIS_URL!;
  let prefix: string;
  let client: Redis;
  let subscriber: Redis;
  let bands: Queue<{ n: number }>[];
  let consumer: BandConsumer<{ n: number }> | undefined;

  const makeBands = (lockDuration = 5000) =>
    PRIORITY_BANDS.map(
      (b) =>
        new Bull<{ n: number }>(bandQueueName(b), {
          prefix,
          settings: { lockDuration, lockRenewTime: lockDuration / 2, stalledInterval: 1000, maxStalledCount: 2 },
          createClient: (type) =>
            (type === 'client'
              ? client
              : type === 'subscriber'
                ? subscriber
                : new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false })) as never,
        }),
    );
  const band = (b: number) => bands[PRIORITY_BANDS.indexOf(b)];
  const opts = { concurrency: 1, jobName: 'segment', idlePollMs: 60_000, retryDelayMs: 200, fairness };
  /** Jobs queued in a band: Bull's wait list plus (fairness `user`) its user lists. */
  const queued = async (b: number) => (await band(b).getWaitingCount()) + (await fairCount(client, band(b)));
  const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) {
        const states = await Promise.all(bands.map((q) => q.getJobCounts()));
        throw new Error(`timed out waiting for ${what}; counts per band ${JSON.stringify(states)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  beforeEach(async () => {
    prefix = `{bandtest_${randomBytes(4).toString('hex')}}`;
    client = new Redis(REDIS_URL, { enableAutoPipelining: true });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
    client.setMaxListeners(0);
    subscriber.setMaxListeners(0);
    bands = makeBands();
    await Promise.all(bands.map((q) => q.isReady()));
  });

  afterEach(async () => {
    await consumer?.stop();
    consumer = undefined;
    await Promise.all(bands.map((q) => q.obliterate({ force: true }).then(() => q.close())));
    client.disconnect();
    subscriber.disconnect();
  });

  it('takes jobs from the most urgent non-empty band first, first in first out within a band', async () => {
    // Added in an order unrelated to priority: (band, n).
    const adds: Array<[number, number]> = [
      [1, 1], [5, 2], [10, 3], [1, 4], [7, 5], [10, 6], [5, 7], [2, 8], [10, 9], [7, 10],
    ];
    for (const [b, n] of adds) await band(b).add('segment', { n }, { jobId: `j${n}` });
    const seen: number[] = [];
    consumer = new BandConsumer(bands, client, opts);
    await consumer.start(async (job: Job<{ n: number }>) => {
      seen.push(job.data.n);
    });
    await until('all processed', () => seen.length === adds.length);
    expect(seen).toEqual([3, 6, 9, 5, 10, 2, 7, 8, 1, 4]);
    // Completed in Bull (moved by Bull's own processJob), in their own band queue.
    expect((await band(10).getJobCounts()).completed).toBe(3);
    expect((await band(1).getJobCounts()).completed).toBe(2);
    expect(await band(1).getJob('j1').then((j) => j?.finishedOn)).toBeGreaterThan(0);
  });

  it('wakes on a job added while every band is empty (pub/sub, not the idle poll), then waits again', async () => {
    const seen: number[] = [];
    consumer = new BandConsumer(bands, client, opts); // idle poll 60 s: only the wake-up can start it
    await consumer.start(async (job: Job<{ n: number }>) => {
      seen.push(job.data.n);
    });
    const parked = () => (consumer as unknown as { parked: unknown[] }).parked.length;
    await until('every slot parked', () => parked() === 1);
    await band(4).add('segment', { n: 1 });
    await until('the job added to an idle consumer', () => seen.length === 1, 10_000);
    await band(9).add('segment', { n: 2 });
    await until('a second one', () => seen.length === 2, 10_000);
    expect(seen).toEqual([1, 2]);
  });

  it('a job added to ten idle slots wakes one of them, not all: a couple of pops, not one per slot', async () => {
    const seen: number[] = [];
    consumer = new BandConsumer(bands, client, { ...opts, concurrency: 10 });
    await consumer.start(async (job: Job<{ n: number }>) => {
      seen.push(job.data.n);
    });
    const internals = consumer as unknown as { parked: unknown[]; next: () => Promise<unknown> };
    await until('every slot parked', () => internals.parked.length === 10);
    const pops = jest.spyOn(internals, 'next');
    await band(3).add('segment', { n: 7 });
    await until('the job is done and every slot parked again', () => seen.length === 1 && internals.parked.length === 10);
    // The woken slot pops the job and wakes one more, which finds nothing and parks (each wake-up of all ten cost ten pops and more).
    expect(pops.mock.calls.length).toBeLessThanOrEqual(3);
    expect(seen).toEqual([7]);
  });

  it('retries a failing job with Bull backoff in its band, and the retry is taken when due', async () => {
    let calls = 0;
    consumer = new BandConsumer(bands, client, opts);
    await consumer.start(async () => {
      calls += 1;
      if (calls < 3) throw new Error(`boom ${calls}`);
      return 'ok';
    });
    await band(6).add('segment', { n: 1 }, { jobId: 'retry-me', attempts: 3, backoff: { type: 'exponential', delay: 100 } });
    await until('third attempt', async () => (await band(6).getJob('retry-me'))?.finishedOn !== undefined);
    const job = (await band(6).getJob('retry-me'))!;
    expect(calls).toBe(3);
    expect(job.attemptsMade).toBe(2); // two failures recorded before the success
    expect(await job.getState()).toBe('completed');
  });

  it('a job that used every attempt ends failed (errors are not swallowed)', async () => {
    consumer = new BandConsumer(bands, client, opts);
    await consumer.start(async () => {
      throw new Error('always');
    });
    await band(3).add('segment', { n: 1 }, { jobId: 'doomed', attempts: 2 });
    await until('failed', async () => (await band(3).getJob('doomed').then((j) => j?.getState())) === 'failed');
    expect((await band(3).getJob('doomed'))!.failedReason).toBe('always');
  });

  it('takes nothing while paused (local pause, admin pause) and resumes', async () => {
    const seen: number[] = [];
    consumer = new BandConsumer(bands, client, opts);
    consumer.pause();
    await consumer.start(async (job: Job<{ n: number }>) => {
      seen.push(job.data.n);
    });
    await band(8).add('segment', { n: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual([]);
    expect(await band(8).getJob(String((await band(8).getWaiting())[0]?.id)).then((j) => j?.getState())).toBe('waiting');

    // Admin pause (Bull's global pause of every band) while the local pause is lifted: still nothing.
    await Promise.all(bands.map((q) => q.pause()));
    consumer.resume();
    await band(2).add('segment', { n: 2 });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual([]);

    await Promise.all(bands.map((q) => q.resume())); // publishes `resumed`: the parked slots wake
    await until('both taken after resume', () => seen.length === 2, 10_000);
    expect(seen).toEqual([1, 2]); // band 8 before band 2
  });

  it('releaseSlot lets the slot take its next job while the job finishes, but never more than one finishing', async () => {
    for (let n = 1; n <= 3; n++) await band(5).add('segment', { n }, { jobId: `e${n}` });
    const started: number[] = [];
    const finish = new Map<number, () => void>();
    consumer = new BandConsumer(bands, client, opts); // one slot
    await consumer.start(async (job: Job<{ n: number }>, releaseSlot) => {
      started.push(job.data.n);
      releaseSlot();
      await new Promise<void>((r) => finish.set(job.data.n, r));
    });
    await until('job 2 started while job 1 is still running', () => started.length === 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(started).toEqual([1, 2]); // job 3 waits: job 1 is still finishing
    finish.get(1)!();
    await until('job 3 started once job 1 finished', () => started.length === 3);
    finish.get(2)!();
    finish.get(3)!();
    await until('all completed', async () => (await band(5).getJobCounts()).completed === 3);
  });

  it('a job fetched ahead is given back to the head of its band when the consumer pauses', async () => {
    for (let n = 1; n <= 3; n++) await band(7).add('segment', { n }, { jobId: `a${n}` });
    const started: number[] = [];
    let finishFirst!: () => void;
    const ahead: string[] = [];
    consumer = new BandConsumer(bands, client, {
      ...opts,
      onFetchedAhead: (job) => ahead.push(String(job.id)),
    }); // one slot: under load, it fetches job 2 ahead
    await consumer.start(async (job: Job<{ n: number }>) => {
      started.push(job.data.n);
      if (job.data.n === 1) await new Promise<void>((r) => (finishFirst = r));
    });
    await until('job 1 running and job 2 fetched ahead', async () => started.length === 1 && (await band(7).getActiveCount()) === 2);
    consumer.pause();
    finishFirst();
    await until('job 2 back in the queue', async () => (await band(7).getActiveCount()) === 0 && (await queued(7)) === 2);
    expect(started).toEqual([1]);
    expect(ahead).toEqual(['a2']); // the hook that lets the worker look at it early
    expect(await client.exists(`${prefix}:${bandQueueName(7)}:a2:lock`)).toBe(0); // its lock was dropped
    consumer.resume();
    await until('2 then 3', () => started.length === 3);
    expect(started).toEqual([1, 2, 3]); // job 2 kept its place at the head of the line
  });

  it('the lock of a job waiting ahead is renewed, so a long job before it does not let another consumer take it', async () => {
    await Promise.all(bands.map((q) => q.close()));
    bands = makeBands(1000); // 1 s locks, renewed every 0.5 s; stalled check every 1 s
    await Promise.all(bands.map((q) => q.isReady()));
    for (let n = 1; n <= 2; n++) await band(4).add('segment', { n }, { jobId: `l${n}` });
    const runs: Array<[string, number]> = [];
    consumer = new BandConsumer(bands, client, opts);
    await consumer.start(async (job: Job<{ n: number }>) => {
      runs.push(['A', job.data.n]);
      if (job.data.n === 1) await new Promise((r) => setTimeout(r, 3500)); // job 2 waits ahead for 3.5 s
    });
    await until('job 2 fetched ahead', async () => (await band(4).getActiveCount()) === 2);
    // A second consumer (its own Bull queue objects, as another worker process has) on the same bands:
    // its stalled checks would move an unlocked job 2 back to wait and run it.
    const otherBands = makeBands(1000);
    const other = new BandConsumer(otherBands, client, opts);
    await other.start(async (job: Job<{ n: number }>) => {
      runs.push(['B', job.data.n]);
    });
    try {
      await until('both completed', async () => (await band(4).getJobCounts()).completed === 2, 15_000);
      expect(runs).toEqual([
        ['A', 1],
        ['A', 2],
      ]);
    } finally {
      await other.stop();
      await Promise.all(otherBands.map((q) => q.close()));
    }
  });

  it('a job left active without a lock (its worker died between pop and lock) is moved back and processed', async () => {
    await band(5).add('segment', { n: 1 }, { jobId: 'orphan' });
    // What a process killed right after the pop leaves: the id in `active`, no lock.
    await client.rpoplpush(`${prefix}:${bandQueueName(5)}:wait`, `${prefix}:${bandQueueName(5)}:active`);
    const seen: number[] = [];
    consumer = new BandConsumer(bands, client, opts);
    await consumer.start(async (job: Job<{ n: number }>) => {
      seen.push(job.data.n);
    });
    await until('the orphan processed', () => seen.length === 1, 15_000);
    expect(await band(5).getJob('orphan').then((j) => j?.getState())).toBe('completed');
  });
});
