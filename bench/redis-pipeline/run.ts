/**
 * What a pipeline costs a client that carries Bull's Lua scripts, with ioredis's own `pipeline()` and
 * with `shareScriptMethods` (src/redis/script-pipelines.ts), side by side in one run, alternating:
 *  - making one pipeline (`client.pipeline()`, what auto-pipelining does for every event-loop turn
 *    that sends a command);
 *  - the client process's CPU per script call when each call is alone in its turn (awaited before the
 *    next: the shape of a worker's commands at a 50 ms ML service), from process.cpuUsage().
 * Both clients are auto-pipelined, on the same Redis (REDIS_URL), with every Bull 4 script defined on
 * them (a Bull queue made on each). A component figure: the users' setting is bench/pipeline's.
 *
 *   npx nest build && node dist/bench/redis-pipeline/run.js
 */
import Bull from 'bull';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { shareScriptMethods } from '../../src/redis/script-pipelines';
import {
  REDIS_URL,
  deleteRedisKeys,
  f1,
  f2,
  invocation,
  runMain,
  table,
  writeResults,
} from '../common/harness';

const MAKES = Number(process.env.BENCH_PIPELINE_MAKES ?? 50_000);
const CALLS = Number(process.env.BENCH_PIPELINE_CALLS ?? 10_000);
const ROUNDS = 3;

type Scripted = Redis & { spherosegBenchNoop(key: string): Promise<number> };

runMain(async () => {
  const tag = `bench_rpipe_${randomBytes(4).toString('hex')}`;
  const made: Redis[] = [];
  const queues: Bull.Queue[] = [];
  const client = async (shared: boolean): Promise<Scripted> => {
    const c = new Redis(REDIS_URL, {
      enableAutoPipelining: true,
      maxRetriesPerRequest: null,
      enableReadyCheck: false,
    });
    made.push(c);
    if (shared) shareScriptMethods(c);
    const q = new Bull(`${tag}_${shared ? 'shared' : 'own'}`, {
      createClient: (type) =>
        (type === 'client'
          ? c
          : new Redis(REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false })) as never,
    });
    queues.push(q);
    void q.client; // Bull defines its scripts on first use of its command client
    c.defineCommand('spherosegBenchNoop', { numberOfKeys: 1, lua: 'return 1' });
    await c.ping();
    return c as Scripted;
  };
  try {
    const sides = { own: await client(false), shared: await client(true) };
    const scripts = Object.keys((sides.own as unknown as { scriptsSet: object }).scriptsSet).length;
    const make = { own: 0, shared: 0 };
    const call = { own: 0, shared: 0 };
    const calls = { own: 0, shared: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      for (const side of ['own', 'shared'] as const) {
        const c = sides[side];
        const t = performance.now();
        for (let i = 0; i < MAKES; i++) c.pipeline();
        make[side] += performance.now() - t;
        const cpu = process.cpuUsage();
        for (let i = 0; i < CALLS; i++) await c.spherosegBenchNoop(`${tag}:k`);
        const used = process.cpuUsage(cpu);
        call[side] += (used.user + used.system) / 1000;
        calls[side] += CALLS;
      }
    }
    const nsPerMake = (side: 'own' | 'shared') => (make[side] * 1e6) / (MAKES * ROUNDS);
    const usPerCall = (side: 'own' | 'shared') => (call[side] * 1000) / calls[side];
    const rows = (['own', 'shared'] as const).map((side) => [
      side === 'own' ? "ioredis's own `pipeline()`" : '`shareScriptMethods`',
      f1(nsPerMake(side) / 1000),
      f1(usPerCall(side)),
    ]);
    const out = [
      `A client with ${scripts} scripts (Bull 4's and one no-op), auto-pipelined, on ${REDIS_URL.replace(/\/\/[^@]*@/, '//')}; ${ROUNDS} alternating rounds of ${MAKES} \`pipeline()\` calls, then ${CALLS} script calls awaited one by one (one per event-loop turn, so one auto-pipeline each), per side.`,
      '',
      table(
        [
          'pipelines of',
          'µs per `pipeline()`',
          'client CPU µs per script call, one per turn (process.cpuUsage)',
        ],
        rows,
      ),
      '',
      `shared / own: making a pipeline ${f2(nsPerMake('shared') / nsPerMake('own'))}, CPU per call ${f2(usPerCall('shared') / usPerCall('own'))}.`,
    ].join('\n');
    console.log(out);
    writeResults(
      'redis-pipeline',
      "Redis pipelines on a client with Bull's scripts (component)",
      invocation(),
      out,
    );
  } finally {
    await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
    for (const c of made) c.disconnect();
    await deleteRedisKeys(`*${tag}*`);
  }
});
