/**
 * Shared plumbing of the benches: one database and one queue name per run (dropped/deleted at the
 * end), real backend processes from the build, an ML stub that records when it answers, fast image
 * seeding, percentiles and the RESULTS.md writer. Loopback only.
 */
import { ChildProcess, execSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { ALL_MIGRATIONS } from '../../migrations';
import { MlStub } from '../../test/support/ml-stub';
import { freeLoopbackPort } from '../../test/support/pg-instance';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432';

/** `dist/bench/common` → `dist/src/main.js` (works for any outDir of the same build). */
export const BACKEND_MAIN = process.env.BACKEND_MAIN ?? path.resolve(__dirname, '..', '..', 'src', 'main.js');

/**
 * The V8 heap settings the api runs with in production (Dockerfile `ENV NODE_OPTIONS`, `npm run
 * start:prod`, deploy/k8s/api.yaml; README "Memory"): serving processes are started with them here too,
 * so the benches measure what users run. Workers run without them, as in deploy/k8s/worker.yaml.
 */
export const API_NODE_OPTIONS = '--max-old-space-size=160 --max-semi-space-size=8';

const WATCHDOG = `data:text/javascript,${encodeURIComponent(
  "const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, 500).unref();",
)}`;

// ---------------------------------------------------------------------------------------------
// Per-run environment

export interface BenchEnv {
  tag: string;
  dbName: string;
  databaseUrl: string;
  uploadDir: string;
  jwtSecret: string;
  adminEmail: string;
  adminPassword: string;
  /** Every queue name made by this run (all contain `tag`), deleted at cleanup. */
  queue(name: string): string;
  pg(): Promise<Client>;
  cleanup(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
export function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => console.error('cleanup:', (e as Error).message));
  })();
  return cleaning;
}
process.once('SIGINT', () => void runCleanups().then(() => process.exit(130)));
process.once('SIGTERM', () => void runCleanups().then(() => process.exit(143)));

/**
 * Creates the bench's own database and applies every migration, for benches that call the SQL functions
 * without an app process. The DataSource (the caller destroys it) can also undo and redo migrations.
 */
export async function migratedDatabase(env: BenchEnv): Promise<DataSource> {
  const admin = new Client({ connectionString: `${PG_BASE}/postgres` });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${env.dbName}"`);
  } finally {
    await admin.end();
  }
  const ds = new DataSource({ type: 'postgres', url: env.databaseUrl, migrations: ALL_MIGRATIONS, migrationsTableName: 'migrations' });
  await ds.initialize();
  try {
    await ds.runMigrations({ transaction: 'each' });
  } catch (err) {
    await ds.destroy();
    throw err;
  }
  return ds;
}

/**
 * Undoes the applied migrations, newest first, until `name` is undone too: a bench that compares a
 * function with what a migration replaced must also undo the later migrations that replace it again.
 */
export async function undoMigrationsThrough(ds: DataSource, name: string): Promise<void> {
  while ((await ds.query('SELECT 1 FROM migrations WHERE name = $1', [name])).length > 0) await ds.undoLastMigration({ transaction: 'each' });
}

/**
 * Settling runs (V8 goes on optimizing a long-running process's hot code for several rounds of work):
 * runs `once(n)` (n = 1, 2, …) until `cost` of a run falls by less than `drop` from the run before,
 * starting from `first`, at least `min` and at most `max` runs. Returns every run, each to be reported.
 */
export async function settle<T>(first: T, once: (n: number) => Promise<T>, cost: (run: T) => number, max: number, drop = 0.1, min = 0): Promise<T[]> {
  const runs: T[] = [];
  for (let before = cost(first); runs.length < max; ) {
    const run = await once(runs.length + 1);
    runs.push(run);
    const now = cost(run);
    if (now > before * (1 - drop) && runs.length >= min) break;
    before = now;
  }
  return runs;
}

export function benchEnv(kind: string): BenchEnv {
  const tag = `bench_${kind}_${randomBytes(4).toString('hex')}`;
  const dbName = `spheroseg_${tag}`;
  const uploadDir = mkdtempSync(path.join(os.tmpdir(), `${tag}-uploads-`));
  const clients: Client[] = [];
  const env: BenchEnv = {
    tag,
    dbName,
    databaseUrl: `${PG_BASE}/${dbName}`,
    uploadDir,
    jwtSecret: randomBytes(24).toString('hex'),
    adminEmail: `admin_${tag}@example.org`,
    adminPassword: randomBytes(12).toString('hex'),
    queue: (name) => `${tag}_${name}`,
    pg: async () => {
      const c = new Client({ connectionString: `${PG_BASE}/${dbName}` });
      await c.connect();
      clients.push(c);
      return c;
    },
    cleanup: async () => {
      for (const c of clients) await c.end().catch(() => undefined);
      await stopAllBackends();
      const admin = new Client({ connectionString: `${PG_BASE}/postgres` });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
      await deleteRedisKeys(`*${tag}*`);
      rmSync(uploadDir, { recursive: true, force: true });
    },
  };
  cleanups.push(env.cleanup);
  return env;
}

/** SCAN + UNLINK of every key matching `pattern` (the run's tag), in batches. */
export async function deleteRedisKeys(pattern: string): Promise<number> {
  const r = new Redis(REDIS_URL, { lazyConnect: true });
  await r.connect();
  let cursor = '0';
  let n = 0;
  try {
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
      cursor = next;
      if (keys.length) n += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Backend processes

export interface Backend {
  name: string;
  role: string;
  url: string;
  pid: number;
  child: ChildProcess;
  logs(): string;
  stop(graceMs?: number): Promise<void>;
  request(p: string, init?: { method?: string; token?: string; json?: unknown; timeoutMs?: number }): Promise<Response>;
  /**
   * The process's resident set (VmRSS of /proc/<pid>/status, what `process_resident_memory_bytes`
   * reports), read from outside: sampling it through the process's own /api/metrics, several times a
   * second, loaded the measured api with scrapes (each ≈ 9 ms of api CPU, measured alone, plus the queue
   * counts in Redis) that Prometheus makes once a scrape interval (1 min by default; deploy/prometheus).
   */
  rss(): Promise<number>;
}

const backends = new Set<Backend>();

export async function startBackend(
  env: BenchEnv,
  role: 'api' | 'worker' | 'all',
  extra: Record<string, string>,
  name: string = role,
  nodeArgs: string[] = [],
  main: string = BACKEND_MAIN,
): Promise<Backend> {
  if (!existsSync(main)) throw new Error(`${main} does not exist: build first`);
  const port = await freeLoopbackPort();
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    ...(process.env.NODE_PATH ? { NODE_PATH: process.env.NODE_PATH } : {}),
    NODE_ENV: 'production',
    APP_ROLE: role,
    PORT: String(port),
    DATABASE_URL: env.databaseUrl,
    REDIS_URL,
    UPLOAD_DIR: env.uploadDir,
    JWT_SECRET: env.jwtSecret,
    // Only serving processes seed the admin account (workers never need it).
    ...(role === 'worker' ? {} : { ADMIN_EMAIL: env.adminEmail, ADMIN_PASSWORD: env.adminPassword, NODE_OPTIONS: API_NODE_OPTIONS }),
    LOG_LEVEL: 'warn',
    RATE_LIMIT_PER_MINUTE: '1000000000',
    MAX_PENDING_TASKS_PER_USER: '1000000',
    ...(process.env.BENCH_QUEUE_FAIRNESS ? { QUEUE_FAIRNESS: process.env.BENCH_QUEUE_FAIRNESS } : {}), // user (default) | none
    ...(process.env.BENCH_QUEUE_WRITE_WINDOW_MS ? { QUEUE_WRITE_WINDOW_MS: process.env.BENCH_QUEUE_WRITE_WINDOW_MS } : {}), // A/B of the window
    ...extra,
  };
  const child = spawn(process.execPath, ['--import', WATCHDOG, ...nodeArgs, main], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  const add = (c: Buffer) => {
    if (logs.length < 1 << 20) logs += c.toString('utf8');
  };
  child.stdout!.on('data', add);
  child.stderr!.on('data', add);
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const url = `http://127.0.0.1:${port}`;
  const b: Backend = {
    name,
    role,
    url,
    pid: child.pid ?? -1,
    child,
    logs: () => logs,
    stop: async (graceMs = 15_000) => {
      backends.delete(b);
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(t);
    },
    request: (p, init = {}) => {
      const headers: Record<string, string> = {};
      if (init.token) headers.authorization = `Bearer ${init.token}`;
      let body: string | undefined;
      if (init.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(init.json);
      }
      return fetch(url + p, { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, signal: AbortSignal.timeout(init.timeoutMs ?? 30_000) });
    },
    rss: async () => {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : NaN;
    },
  };
  backends.add(b);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`${name} exited before it was live:\n${logs.slice(-4000)}`);
    try {
      const res = await fetch(`${url}/api/health/live`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return b;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} not live in 60 s:\n${logs.slice(-4000)}`);
    }
    await sleep(100);
  }
}

export async function stopAllBackends(): Promise<void> {
  await Promise.all([...backends].map((b) => b.stop()));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- callers name the body type they expect; untyped callers read loose JSON
export async function json<T = any>(res: Response | Promise<Response>, expect?: number | number[]): Promise<T> {
  const r = await res;
  const text = await r.text();
  const ok = expect === undefined ? r.ok : ([] as number[]).concat(expect).includes(r.status);
  if (!ok) throw new Error(`HTTP ${r.status}: ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

export async function register(api: Backend): Promise<{ token: string; id: number }> {
  const b = await json<{ accessToken: string; user: { id: number } }>(
    api.request('/api/auth/register', { json: { email: `u_${randomBytes(6).toString('hex')}@example.org`, password: 'password-123' } }),
    201,
  );
  return { token: b.accessToken, id: b.user.id };
}

export async function adminToken(api: Backend, env: BenchEnv): Promise<string> {
  const b = await json<{ accessToken: string }>(api.request('/api/auth/login', { json: { email: env.adminEmail, password: env.adminPassword } }), 200);
  return b.accessToken;
}

/** Uploads one real PNG through the API, then clones its row `n` times (each with its own file). */
export async function seedImages(api: Backend, env: BenchEnv, pg: Client, token: string, userId: number, n: number): Promise<number[]> {
  const png = await import('../../test/support/fixtures').then((f) => f.makePng(64, 48));
  await import('../../test/support/fixtures').then((f) => f.uploadImage({ url: api.url }, token, png));
  const { rows } = await pg.query<{ id: number; storage_path: string; width: number; height: number; mime_type: string; size_bytes: string }>(
    'SELECT id, storage_path, width, height, mime_type, size_bytes FROM images WHERE user_id = $1 ORDER BY id LIMIT 1',
    [userId],
  );
  const src = rows[0];
  const dir = `bench/${randomBytes(4).toString('hex')}`;
  mkdirSync(path.join(env.uploadDir, dir), { recursive: true });
  const bytes = readFileSync(path.join(env.uploadDir, src.storage_path));
  for (let i = 0; i < n; i++) writeFileSync(path.join(env.uploadDir, dir, `${i}.png`), bytes);
  const res = await pg.query<{ id: number }>(
    `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
     SELECT $1, 'clone.png', $2 || '/' || g || '.png', $3, $4, $5, $6 FROM generate_series(0, $7::int - 1) g
     RETURNING id`,
    [userId, dir, src.mime_type, src.size_bytes, src.width, src.height, n],
  );
  return res.rows.map((r) => r.id).sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// ML stub that records when it answered each task

export interface TimedStub {
  url: string;
  /** performance.now() when the response for task_id was written (res.end called). */
  sentAt: Map<string, number>;
  calls: number;
  /** Answer delay; may be changed between phases (0: answer as soon as the request is read). */
  latencyMs: number;
  stop(): Promise<void>;
}

export async function startTimedStub(latencyMs: number): Promise<TimedStub> {
  const body = JSON.stringify({ success: true, results: MlStub.results(640, 480) });
  const sentAt = new Map<string, number>();
  const sockets = new Set<Socket>();
  const stub = { sentAt, calls: 0, latencyMs } as TimedStub;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const p = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && p === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"healthy","model_loaded":true}');
        return;
      }
      if (req.method !== 'POST' || p !== '/segment') {
        res.writeHead(404).end();
        return;
      }
      stub.calls++;
      let taskId = '';
      try {
        taskId = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { task_id: string }).task_id;
      } catch {
        /* ignore */
      }
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        sentAt.set(taskId, performance.now());
      };
      if (stub.latencyMs > 0) setTimeout(answer, stub.latencyMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  cleanups.push(() => stub.stop().catch(() => undefined));
  return stub;
}

// ---------------------------------------------------------------------------------------------
// Figures and RESULTS.md

export function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

export const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : String(x));
export const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
export const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : String(x));

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(String).join(' | ')} |`);
  return lines.join('\n');
}

export function machine(): string {
  let cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let nproc = String(os.availableParallelism());
  try {
    nproc = execSync('nproc').toString().trim();
  } catch {
    /* keep */
  }
  cpu = cpu.trim();
  let redis = '';
  try {
    redis = execSync('redis-server --version').toString().match(/v=(\S+)/)?.[1] ?? '';
  } catch {
    /* keep */
  }
  return `nproc ${nproc} (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, node ${process.version}${redis ? `, redis ${redis}` : ''}, PostgreSQL 15`;
}

const RESULTS = path.resolve(process.env.BENCH_RESULTS ?? path.join(process.cwd(), 'bench', 'RESULTS.md'));

/** The command line that ran this bench, with the BENCH_* / NODE_PATH variables that were set. */
export function invocation(build = 'npx nest build'): string {
  const vars = Object.entries(process.env)
    .filter(([k]) => (k.startsWith('BENCH_') && k !== 'BENCH_BUILD') || k === 'NODE_PATH' || k === 'BACKEND_MAIN')
    .map(([k, v]) => (/[\s'"$]/.test(v ?? '') ? `${k}='${v}'` : `${k}=${v}`))
    .join(' ');
  const script = path.relative(process.cwd(), process.argv[1]) || process.argv[1];
  return `${build} && ${vars ? vars + ' ' : ''}node ${script.startsWith('..') ? process.argv[1] : script}`;
}

/** Replaces (or appends) the section between `<!-- bench:<name> -->` markers of bench/RESULTS.md. */
export function writeResults(name: string, title: string, command: string, body: string): void {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = [
    start,
    `## ${title}`,
    '',
    `Run ${new Date().toISOString()} on ${machine()}.`,
    '',
    'Command:',
    '',
    '```bash',
    command,
    '```',
    '',
    body.trim(),
    end,
  ].join('\n');
  let text = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# Benchmark results\n\n';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + section + text.slice(j + end.length);
  else {
    const seg = text.indexOf('## Segmenter');
    text = seg >= 0 ? `${text.slice(0, seg)}${section}\n\n${text.slice(seg)}` : `${text.trimEnd()}\n\n${section}\n`;
  }
  writeFileSync(RESULTS, text);
  console.log(`\nwrote section "${name}" of ${RESULTS}`);
}

/** Wraps a bench main: always cleans up, exit code 1 on error. */
export function runMain(main: () => Promise<void>): void {
  main()
    .then(() => runCleanups())
    .then(() => process.exit(0))
    .catch(async (err: unknown) => {
      console.error(err);
      await runCleanups();
      process.exit(1);
    });
}
