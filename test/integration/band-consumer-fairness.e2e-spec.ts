import Bull, { Job, Queue } from 'bull';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { BandConsumer } from '../../src/queue/worker/band-consumer';
import { PRIORITY_BANDS, bandQueueName } from '../../src/queue/queue.constants';
import { Fairness, fairAdd, fairCount, fairHolds, fairKeys, fairPeek, fairPop, fairPopArgs, fairRemove } from '../../src/queue/fair-lines';

type Data = { n: string; userId: number };

/**
 * Turns between users inside a band (QUEUE_FAIRNESS=user), on the real Redis of this run, with one slot
 * so the order jobs are taken in is exactly the order they run in. Jobs are added the way the producer
 * adds them (`fairAdd`); re-entries (retries) come back through Bull's wait list.
 */
describe('BandConsumer fair turns between users (real Redis)', () => {
  const REDIS_URL = process.env.REDIS_URL!;
  let prefix: string;
  let client: Redis;
  let subscriber: Redis;
  let bands: Queue<Data>[];
  let consumer: BandConsumer<Data> | undefined;
  const band = (b: number) => bands[PRIORITY_BANDS.indexOf(b)];
  const opts = (fairness: Fairness) => ({ concurrency: 1, jobName: 'segment', idlePollMs: 60_000, retryDelayMs: 200, fairness });
  const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** Queues `count` jobs of `user` (ids `<tag><1..count>`) in band `b`, the producer's way. */
  const queueFor = (b: number, user: number, tag: string, count: number, extra: Bull.JobOptions = {}) =>
    fairAdd(
      client,
      band(b),
      Array.from({ length: count }, (_, i) => ({ jobId: `${tag}${i + 1}`, name: 'segment', data: { n: `${tag}${i + 1}`, userId: user }, opts: extra })),
    );
  const run = async (fairness: Fairness, total: number, handler?: (job: Job<Data>) => Promise<void>) => {
    const seen: string[] = [];
    consumer = new BandConsumer(bands, client, opts(fairness));
    await consumer.start(async (job: Job<Data>) => {
      seen.push(job.data.n);
      await handler?.(job);
    });
    await until(`${total} jobs run`, () => seen.length >= total);
    return seen;
  };

  beforeEach(async () => {
    prefix = `{fairtest_${randomBytes(4).toString('hex')}}`;
    client = new Redis(REDIS_URL, { enableAutoPipelining: true });
    subscriber = new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
    client.setMaxListeners(0);
    subscriber.setMaxListeners(0);
    bands = PRIORITY_BANDS.map(
      (b) =>
        new Bull<Data>(bandQueueName(b), {
          prefix,
          settings: { lockDuration: 5000, lockRenewTime: 2500, stalledInterval: 1000, maxStalledCount: 2 },
          createClient: (type) =>
            (type === 'client'
              ? client
              : type === 'subscriber'
                ? subscriber
                : new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false })) as never,
        }),
    );
    await Promise.all(bands.map((q) => q.isReady()));
  });

  afterEach(async () => {
    await consumer?.stop();
    consumer = undefined;
    await Promise.all(bands.map((q) => q.obliterate({ force: true }).then(() => q.close())));
    const left = await client.keys(`${prefix}*`);
    if (left.length > 0) await client.del(...left);
    client.disconnect();
    subscriber.disconnect();
  });

  it("A's backlog of 40, then B's 4: the users alternate, first in first out within each", async () => {
    await queueFor(1, 1, 'a', 40);
    await queueFor(1, 2, 'b', 4);
    expect(await fairCount(client, band(1))).toBe(44);
    expect((await fairPeek(client, band(1), 0, 9)).join(' ')).toBe('a1 b1 a2 b2 a3 b3 a4 b4 a5 a6'); // what the board lists
    const seen = await run('user', 44);
    expect(seen.slice(0, 10)).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4', 'a5', 'a6']);
    expect(seen.filter((n) => n.startsWith('a'))).toEqual(Array.from({ length: 40 }, (_, i) => `a${i + 1}`));
    // Every line emptied, every user left the turns, the count is back to 0.
    expect(await fairCount(client, band(1))).toBe(0);
    expect(await client.llen(fairKeys(band(1)).ring)).toBe(0);
    expect(await client.exists(fairKeys(band(1)).user('1'), fairKeys(band(1)).user('2'))).toBe(0);
  });

  it('users with 20, 8, 3 and 1 tasks: each user in turn, one task each, the last user second after the first', async () => {
    await queueFor(3, 1, 'w', 20);
    await queueFor(3, 2, 'x', 8);
    await queueFor(3, 3, 'y', 3);
    await queueFor(3, 4, 'z', 1);
    const seen = await run('user', 32);
    expect(seen.slice(0, 12)).toEqual(['w1', 'x1', 'y1', 'z1', 'w2', 'x2', 'y2', 'w3', 'x3', 'y3', 'w4', 'x4']);
    expect(seen.slice(-12)).toEqual(['w9', 'w10', 'w11', 'w12', 'w13', 'w14', 'w15', 'w16', 'w17', 'w18', 'w19', 'w20']);
  });

  it('the most urgent band still goes first (a premium task before any normal one), turns inside each band', async () => {
    await queueFor(1, 1, 'a', 3);
    await queueFor(1, 2, 'b', 2);
    await queueFor(10, 3, 'p', 2); // a premium user, queued last
    await queueFor(10, 1, 'q', 1); // user 1 at priority 10 too
    const seen = await run('user', 8);
    expect(seen).toEqual(['p1', 'q1', 'p2', 'a1', 'b1', 'a2', 'b2', 'a3']);
  });

  it('QUEUE_FAIRNESS=none is first in, first out within a band (jobs added to Bull wait list)', async () => {
    for (let i = 1; i <= 6; i++) await band(1).add('segment', { n: `a${i}`, userId: 1 }, { jobId: `a${i}` });
    for (let i = 1; i <= 2; i++) await band(1).add('segment', { n: `b${i}`, userId: 2 }, { jobId: `b${i}` });
    const seen = await run('none', 8);
    expect(seen).toEqual(['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'b1', 'b2']);
  });

  it('QUEUE_FAIRNESS=none still takes jobs left in the user lists (queued while it was user): Bull wait list first', async () => {
    await queueFor(2, 1, 'f', 2); // user lists
    await band(2).add('segment', { n: 'w1', userId: 2 }, { jobId: 'w1' }); // Bull's wait list
    expect(await run('none', 3)).toEqual(['w1', 'f1', 'f2']);
  });

  it("QUEUE_FAIRNESS=user moves jobs from Bull's wait list (queued under none) into their users' lines, oldest first", async () => {
    for (let i = 1; i <= 3; i++) await band(2).add('segment', { n: `o${i}`, userId: 7 }, { jobId: `o${i}` });
    await queueFor(2, 8, 'g', 2);
    // At the first pop user 7's jobs join user 7's line and user 7 the turns, behind user 8.
    expect(await run('user', 5)).toEqual(['g1', 'o1', 'g2', 'o2', 'o3']);
  });

  it('a cancelled queued task leaves its user\'s line, and its user leaves the turns with their last task', async () => {
    await queueFor(1, 1, 'a', 3);
    await queueFor(1, 2, 'b', 1);
    await queueFor(1, 3, 'c', 2);
    expect(await fairHolds(client, band(1), 'b1', { userId: 2 })).toBe(true);
    expect(await fairRemove(client, band(1), 'b1', { userId: 2 })).toBe(true);
    expect(await fairRemove(client, band(1), 'b1', { userId: 2 })).toBe(false); // already gone
    expect(await fairHolds(client, band(1), 'b1', { userId: 2 })).toBe(false);
    expect(await fairRemove(client, band(1), 'a2', { userId: 1 })).toBe(true);
    expect(await fairCount(client, band(1))).toBe(4);
    expect(await client.lrange(fairKeys(band(1)).ring, 0, -1)).toEqual(['3', '1']); // user 2 left
    const seen = await run('user', 4);
    expect(seen).toEqual(['a1', 'c1', 'a3', 'c2']);
  });

  it("a retried job rejoins its user's line (at the back, like Bull's retry); the other users keep their turns", async () => {
    await queueFor(1, 1, 'a', 2, { attempts: 2, backoff: { type: 'fixed', delay: 100 } });
    await queueFor(1, 2, 'b', 2);
    let failed = false;
    const seen: string[] = [];
    consumer = new BandConsumer(bands, client, opts('user'));
    await consumer.start(async (job: Job<Data>) => {
      seen.push(job.data.n);
      if (job.data.n === 'a1' && !failed) {
        failed = true;
        consumer!.pause(); // nothing is taken until the retry is due, so the order does not depend on timing
        throw new Error('transient');
      }
    });
    await until('a1 failed and b1 given back', async () => failed && (await fairCount(client, band(1))) === 3);
    await until('the retry of a1 due, back in Bull wait list', async () => (await band(1).getWaitingCount()) === 1);
    consumer.resume();
    await until('all run', () => seen.length === 5);
    expect(seen).toEqual(['a1', 'b1', 'a2', 'b2', 'a1']);
    expect(await band(1).getJob('a1').then((j) => j?.getState())).toBe('completed');
  });

  it('a job fetched ahead and given back on pause keeps its turn: its user is first again', async () => {
    await queueFor(1, 1, 'a', 3);
    await queueFor(1, 2, 'b', 2);
    const seen: string[] = [];
    let releaseFirst!: () => void;
    consumer = new BandConsumer(bands, client, opts('user'));
    await consumer.start(async (job: Job<Data>) => {
      seen.push(job.data.n);
      if (job.data.n === 'a1') await new Promise<void>((r) => (releaseFirst = r));
    });
    await until('a1 running, b1 fetched ahead', async () => seen.length === 1 && (await band(1).getActiveCount()) === 2);
    consumer.pause();
    releaseFirst();
    await until('b1 given back', async () => (await band(1).getActiveCount()) === 0 && (await fairCount(client, band(1))) === 4);
    expect(await client.lindex(fairKeys(band(1)).ring, -1)).toBe('2'); // user 2 at the front of the turns
    consumer.resume();
    await until('all run', () => seen.length === 5);
    expect(seen).toEqual(['a1', 'b1', 'a2', 'b2', 'a3']);
  });

  it('an id whose job was removed behind the producer (then queued again, as the reconciler does) runs once', async () => {
    await queueFor(1, 1, 'a', 2);
    await queueFor(1, 2, 'b', 1);
    await (await band(1).getJob('a1'))!.remove(); // Bull's remove: the hash goes, the id stays in the list
    await (await band(1).getJob('b1'))!.remove();
    await queueFor(1, 2, 'b', 1); // b1 queued again under the same id: twice in user 2's list
    const seen = await run('user', 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.sort()).toEqual(['a2', 'b1']);
    expect(await fairCount(client, band(1))).toBe(0);
    expect(await client.llen(fairKeys(band(1)).ring)).toBe(0);
  });

  it('an id queued twice is handed out once: the pop locks what it takes, so a second pop right after finds only the copy', async () => {
    await queueFor(1, 2, 'b', 1);
    await (await band(1).getJob('b1'))!.remove();
    await queueFor(1, 2, 'b', 1); // twice in user 2's list, as after a loss and the reconciler
    const args = fairPopArgs(bands, 'user');
    const first = await fairPop(client, args); // a slot's pop, with no job made from it yet
    expect(first).toMatchObject({ jobId: 'b1', fromLines: true });
    expect(first!.fields.data).toBe(JSON.stringify({ n: 'b1', userId: 2 }));
    expect(await client.get(`${(band(1) as unknown as { keys: Record<string, string> }).keys['']}b1:lock`)).toBe((band(1) as unknown as { token: string }).token);
    expect(await fairPop(client, args)).toBeNull(); // another slot's pop right after finds only the copy
    expect(await band(1).getActiveCount()).toBe(1);
  });

  it('an admin pause of the bands stops the pop from the user lists; resume lets it go on', async () => {
    await queueFor(4, 1, 'a', 2);
    await Promise.all(bands.map((q) => q.pause()));
    const seen: string[] = [];
    consumer = new BandConsumer(bands, client, opts('user'));
    await consumer.start(async (job: Job<Data>) => {
      seen.push(job.data.n);
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual([]);
    await Promise.all(bands.map((q) => q.resume()));
    await until('both run after resume', () => seen.length === 2, 10_000);
    expect(seen).toEqual(['a1', 'a2']);
  });

  it('a job added while an admin has paused the bands publishes no waiting event; the resume wakes a slot for it', async () => {
    const waitKey = (band(4) as unknown as { keys: Record<string, string> }).keys.wait;
    const heard: string[] = [];
    const listener = new Redis(REDIS_URL);
    try {
      listener.on('pmessage', (_p: string, _c: string, m: string) => heard.push(m));
      await listener.psubscribe(`${waitKey}ing@*`); // Bull's waiting channels of band 4 (Bull psubscribes the same)
      // A marker sent on the adds' connection after them: Redis keeps the order, so once it is heard,
      // any waiting event of those adds has been heard before it.
      const mark = async (m: string) => {
        await client.publish(`${waitKey}ing@marker`, m);
        await until(`marker ${m}`, () => heard.includes(m));
      };
      const seen: string[] = [];
      // idlePollMs is a minute: only an event can wake the slot in this test.
      consumer = new BandConsumer(bands, client, opts('user'));
      await consumer.start(async (job: Job<Data>) => {
        seen.push(job.data.n);
      });
      await Promise.all(bands.map((q) => q.pause()));
      await queueFor(4, 1, 'p', 2);
      await mark('m1');
      expect(heard).toEqual(['m1']);
      expect(seen).toEqual([]);
      await Promise.all(bands.map((q) => q.resume()));
      await until('both run after resume', () => seen.length === 2, 10_000);
      expect(seen).toEqual(['p1', 'p2']);
      // Resumed: an add announces its job again, and the announcement wakes the idle slot.
      await queueFor(4, 2, 'r', 1);
      await mark('m2');
      expect(heard).toEqual(['m1', 'r1', 'm2']);
      await until('the job added after resume runs', () => seen.length === 3, 10_000);
    } finally {
      listener.disconnect();
    }
  });
});
