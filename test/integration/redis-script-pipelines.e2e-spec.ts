import Bull from 'bull';
import Redis from 'ioredis';
import { shareScriptMethods } from '../../src/redis/script-pipelines';
import { RedisInstance, startRedis } from '../support/redis-instance';

/**
 * shareScriptMethods on a real Redis server of its own (SCRIPT FLUSH must not reach other suites):
 * auto-pipelined script calls still work, including after the server lost its scripts and for a script
 * defined after the first pipeline, and pipelines no longer carry copies of the script methods.
 */
describe('shareScriptMethods (real Redis)', () => {
  let server: RedisInstance;
  let client: Redis;
  const clients: Redis[] = [];

  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    await server.destroy();
  });

  const make = (): Redis => {
    const c = new Redis(server.url, {
      enableAutoPipelining: true,
      maxRetriesPerRequest: null,
      enableReadyCheck: false,
    });
    clients.push(c);
    shareScriptMethods(c);
    return c;
  };
  /** Calls made before the client is ready wait in its offline queue, not in an auto-pipeline. */
  const ready = (c: Redis) =>
    c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r()));
  /** Starts `calls` in one tick and checks they went into an auto-pipeline (the path under test). */
  const inOnePipeline = <T>(calls: () => Array<Promise<T>>): Promise<T[]> => {
    const started = calls();
    expect(client.autoPipelineQueueSize).toBe(started.length);
    return Promise.all(started);
  };

  type Scripted = Redis & Record<string, (...a: unknown[]) => Promise<unknown>>;

  beforeEach(async () => {
    client = make();
    await ready(client);
  });

  it('gives pipelines the script methods through their prototype, not as copies', () => {
    client.defineCommand('spherosegEcho', { numberOfKeys: 1, lua: 'return {KEYS[1], ARGV[1]}' });
    const p = client.pipeline() as unknown as Record<string, unknown>;
    expect(Object.keys(p)).not.toContain('spherosegEcho');
    expect(typeof p.spherosegEcho).toBe('function');
    expect(p.spherosegEcho).toBe((client as unknown as Record<string, unknown>).spherosegEcho);
  });

  it('runs scripts of one tick in one auto-pipeline, each with its own answer', async () => {
    client.defineCommand('spherosegEcho', { numberOfKeys: 1, lua: 'return {KEYS[1], ARGV[1]}' });
    const c = client as Scripted;
    const answers = await inOnePipeline(() =>
      Array.from({ length: 20 }, (_, i) => c.spherosegEcho(`k${i}`, `v${i}`)),
    );
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => [`k${i}`, `v${i}`]));
  });

  it('reloads a script the server lost (NOSCRIPT) inside an auto-pipeline', async () => {
    client.defineCommand('spherosegIncr', {
      numberOfKeys: 1,
      lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    });
    const c = client as Scripted;
    expect(await inOnePipeline(() => [c.spherosegIncr('n', 1)])).toEqual([1]);
    await client.script('FLUSH');
    expect(await inOnePipeline(() => [c.spherosegIncr('n', 2), c.spherosegIncr('n', 3)])).toEqual([3, 6]);
  });

  it('serves a script defined after the first pipeline was made', async () => {
    client.defineCommand('spherosegOne', { numberOfKeys: 0, lua: 'return 1' });
    const c = client as Scripted;
    expect(await inOnePipeline(() => [c.spherosegOne()])).toEqual([1]);
    client.defineCommand('spherosegTwo', { numberOfKeys: 0, lua: 'return 2' });
    expect(await inOnePipeline(() => [c.spherosegOne(), c.spherosegTwo()])).toEqual([1, 2]);
  });

  it("keeps Bull's own scripts working on the client: a job added, taken and completed", async () => {
    const sub = new Redis(server.url, { maxRetriesPerRequest: null, enableReadyCheck: false });
    clients.push(sub);
    const q = new Bull('script-pipelines', {
      createClient: (type) => (type === 'client' ? client : type === 'subscriber' ? sub : make()) as never,
    });
    try {
      const done = new Promise<unknown>((resolve) => q.once('completed', (_job, result) => resolve(result)));
      void q.process(async (job) => ({ doubled: (job.data as { n: number }).n * 2 }));
      await q.add({ n: 21 });
      expect(await done).toEqual({ doubled: 42 });
      expect(await q.getCompletedCount()).toBe(1);
      expect(Object.keys(client.pipeline() as object)).not.toContain('moveToFinished');
    } finally {
      await q.close();
    }
  });
});
