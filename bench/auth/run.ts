/**
 * The auth guard's cost per request, before and after a change, side by side in one run: one `api`
 * process of this build and one of a base build (BENCH_BASE_MAIN, e.g. the commit before sessions
 * built into a directory of its own), each with its own database, both on the shared PostgreSQL and
 * Redis, NODE_ENV=production, LOG_LEVEL=warn, the rate limit counted on every request. autocannon with
 * 50 connections, alternating base / this build phase by phase (ROUNDS rounds) so that drift in the
 * machine's load hits both alike:
 *  - `GET /api/auth/me` (the guard + one primary-key read of the user);
 *  - `GET /api/segmentation/tasks/:id` (the guard + the task read), a queued task (no worker);
 *  - `GET /api/health/live` (@Public, no rate limit: what every request pays besides its own work).
 * Reports requests/s, p50/p99 and the api's CPU ms per request (from /proc).
 *
 *   BENCH_BASE_MAIN=/tmp/base/dist/src/main.js node dist/bench/auth/run.js   (BENCH_AUTH_SECONDS, default 5; BENCH_AUTH_ROUNDS, default 2)
 */
import autocannon from 'autocannon';
import {
  Backend,
  BenchEnv,
  benchEnv,
  f1,
  f3,
  invocation,
  json,
  register,
  runMain,
  seedImages,
  startBackend,
  table,
  writeResults,
} from '../common/harness';
import { cpuSeconds, waitForQuiet } from '../common/probe';

const SECONDS = Number(process.env.BENCH_AUTH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_AUTH_ROUNDS ?? 2);
const CONNECTIONS = 50;
const BASE_MAIN = process.env.BENCH_BASE_MAIN;

interface Target {
  label: string;
  api: Backend;
  token: string;
  taskId: string;
}

interface Sample {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
  cpuS: number;
  non2xx: number;
}

async function prepare(label: string, env: BenchEnv, main?: string): Promise<Target> {
  const api = await startBackend(env, 'api', { QUEUE_NAME: env.queue('q') }, label, [], main);
  const pg = await env.pg();
  const user = await register(api);
  const [image] = await seedImages(api, env, pg, user.token, user.id, 1);
  const task = await json<{ taskId: string }>(
    api.request(`/api/images/${image}/segmentation`, { token: user.token, json: {} }),
    202,
  );
  return { label, api, token: user.token, taskId: task.taskId };
}

async function measure(t: Target, path: string, seconds: number): Promise<Sample> {
  const before = cpuSeconds(t.api.pid);
  const r = await autocannon({
    url: t.api.url + path,
    connections: CONNECTIONS,
    duration: seconds,
    headers: { authorization: `Bearer ${t.token}` },
  });
  return {
    requests: r.requests.total,
    seconds: r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuS: cpuSeconds(t.api.pid) - before,
    non2xx: r.non2xx,
  };
}

async function main(): Promise<void> {
  if (!BASE_MAIN) throw new Error('BENCH_BASE_MAIN must name the base build’s dist/src/main.js');
  const base = await prepare('base', benchEnv('authbase'), BASE_MAIN);
  const head = await prepare('this build', benchEnv('auth'));
  const routes: Array<[string, (t: Target) => string]> = [
    ['GET /api/auth/me', () => '/api/auth/me'],
    ['GET /api/segmentation/tasks/:id', (t) => `/api/segmentation/tasks/${t.taskId}`],
    ['GET /api/health/live', () => '/api/health/live'],
  ];
  for (const t of [base, head]) for (const [, path] of routes) await measure(t, path(t), 1); // warm-up
  const busy = await waitForQuiet();

  const samples = new Map<string, Sample[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, path] of routes) {
      for (const t of round % 2 === 0 ? [base, head] : [head, base]) {
        const s = await measure(t, path(t), SECONDS);
        const key = `${name}|${t.label}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
      }
    }
  }

  const rows: Array<Array<string | number>> = [];
  for (const [name] of routes) {
    for (const t of [base, head]) {
      const list = samples.get(`${name}|${t.label}`) ?? [];
      const requests = list.reduce((n, s) => n + s.requests, 0);
      const seconds = list.reduce((n, s) => n + s.seconds, 0);
      const cpu = list.reduce((n, s) => n + s.cpuS, 0);
      rows.push([
        name,
        t.label,
        requests,
        f1(requests / seconds),
        list.map((s) => s.p50).join(' / '),
        list.map((s) => s.p99).join(' / '),
        f3((cpu * 1000) / requests),
        list.reduce((n, s) => n + s.non2xx, 0),
      ]);
    }
  }
  const out = table(
    [
      'route (50 connections)',
      'build',
      'requests',
      'per s',
      'p50 ms (each round)',
      'p99 ms (each round)',
      'api CPU ms/req',
      'non-2xx',
    ],
    rows,
  );
  console.log(out);
  writeResults(
    'auth',
    'Auth guard cost per request: base vs this build',
    invocation(),
    [
      `Two \`api\` processes side by side (NODE_ENV=production, LOG_LEVEL=warn, one database each on the shared PostgreSQL and Redis, RATE_LIMIT_PER_MINUTE=10⁹ so every request is counted and none refused): the base build (\`BENCH_BASE_MAIN\`) and this build. ${ROUNDS} rounds of ${SECONDS} s per route and build, alternating which build goes first. Busy cores just before measuring: ${f1(busy)} (other people's work on the machine included).`,
      '',
      out,
    ].join('\n'),
  );
}

runMain(main);
