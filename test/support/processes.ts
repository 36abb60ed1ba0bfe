import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { freeLoopbackPort } from './pg-instance';

/**
 * Real backend processes from the build (`node dist/src/main.js`), for tests that need what only a
 * separate process shows: roles, signals, crashes, exit codes, logs, several processes on one
 * PostgreSQL and Redis.
 *
 * Every child inherits this run's DATABASE_URL, REDIS_URL, QUEUE_NAME, UPLOAD_DIR and JWT_SECRET
 * (set by global-setup), runs with LOG_LEVEL=warn and a small DATABASE_POOL_MAX unless `env` says
 * otherwise, and kills itself when the test process is gone (see WATCHDOG). Call
 * {@link stopAllProcesses} in `afterAll` to stop them properly.
 *
 * ```ts
 * const api = await startProcess({ role: 'api', env: { QUEUE_NAME: q, ML_SERVICE_URL: stub.url } });
 * const { token } = await api.register();
 * api.kill('SIGTERM');
 * expect(await api.waitExit()).toEqual({ code: 0, signal: null });
 * ```
 */

export type ProcessRole = 'api' | 'worker' | 'all';

export interface StartProcessOptions {
  role: ProcessRole;
  /** Overrides of the inherited environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Name used in error messages and logs (default `<role>#<n>`). */
  name?: string;
  /** Wait until `/api/health/live` answers 200 (default true). With false, resolves once spawned. */
  waitForLive?: boolean;
  /** Timeout of that wait (default 30 s). */
  liveTimeoutMs?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A fetch Response whose JSON body tests read without casts. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProcessResponse = Omit<Response, 'json'> & { json(): Promise<any> };

export interface BackendProcess {
  name: string;
  role: ProcessRole;
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** stdout and stderr interleaved, as received so far. */
  logs(): string;
  stdout(): string;
  stderr(): string;
  /** Sends a signal; false when the process has already exited. */
  kill(signal?: NodeJS.Signals): boolean;
  /** Resolves when the process exits (rejects after `timeoutMs`, default 30 s, with the logs). */
  waitExit(timeoutMs?: number): Promise<ExitInfo>;
  /** Exit status once exited, else undefined. */
  exitInfo(): ExitInfo | undefined;
  /** SIGTERM, then SIGKILL after `graceMs` (default 15 s); resolves once it has exited. Idempotent. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** fetch() against the process with an optional bearer token and JSON body (5 s timeout by default). */
  request(
    path: string,
    init?: RequestInit & { token?: string; json?: unknown; timeoutMs?: number },
  ): Promise<ProcessResponse>;
  /** Registers a fresh user through this process (roles api/all). */
  register(
    email?: string,
    password?: string,
  ): Promise<{ token: string; user: { id: number; email: string } }>;
}

/**
 * The compiled entry point: `dist/src/main.js` (built by `npm test`'s pretest), or BACKEND_MAIN, e.g. a
 * build in a directory of its own while others rebuild `dist/` (`nest build` deletes it first).
 */
const MAIN = process.env.BACKEND_MAIN ?? path.resolve(__dirname, '..', '..', 'dist', 'src', 'main.js');
const LOG_CAP = 4 * 1024 * 1024;
const running = new Set<BackendProcess>();
let counter = 0;

/**
 * Preloaded into every child (`--import data:…`): the child SIGKILLs itself as soon as its parent (the
 * test run) is gone, however the run ended (crash, SIGKILL, Ctrl-C). Listeners registered from a Jest
 * test file (`process.on('exit' | 'SIGTERM')`) are attached to the sandbox's process object and never
 * run, so the children watch instead. The timer is unref'd and costs nothing measurable.
 */
const WATCHDOG = `data:text/javascript,${encodeURIComponent(
  "const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL'); }, 500).unref();",
)}`;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Spawns `node dist/src/main.js` for a role and (by default) waits until it is live. */
export async function startProcess(opts: StartProcessOptions): Promise<BackendProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} does not exist: build first (npx nest build)`);
  const port = await freeLoopbackPort();
  const name = opts.name ?? `${opts.role}#${++counter}`;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    DATABASE_POOL_MAX: '4',
    APP_ROLE: opts.role,
    PORT: String(port),
  });
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  // Options meant for the Jest process (e.g. inspector flags) must not leak into the backend.
  delete env.NODE_OPTIONS;

  const child = spawn(process.execPath, ['--import', WATCHDOG, MAIN], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let all = '';
  let out = '';
  let err = '';
  const append = (cur: string, chunk: string) => (cur.length > LOG_CAP ? cur : cur + chunk);
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    out = append(out, c);
    all = append(all, c);
  });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    err = append(err, c);
    all = append(all, c);
  });

  let exit: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.once('error', (e) => {
      err = append(err, `spawn error: ${e.message}\n`);
      all = append(all, `spawn error: ${e.message}\n`);
      exit = { code: null, signal: null };
      resolve(exit);
    });
  });
  // stdout/stderr may still hold data when 'exit' fires: wait for 'close' as well, briefly.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

  const url = `http://127.0.0.1:${port}`;

  const request: BackendProcess['request'] = (p, init = {}) => {
    const headers = new Headers(init.headers);
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    const signal = init.signal ?? AbortSignal.timeout(init.timeoutMs ?? 5000);
    return fetch(url + p, { ...init, headers, body, signal }) as Promise<ProcessResponse>;
  };

  const handle: BackendProcess = {
    name,
    role: opts.role,
    url,
    port,
    pid: child.pid ?? -1,
    child,
    logs: () => all,
    stdout: () => out,
    stderr: () => err,
    kill: (signal = 'SIGTERM') => (exit ? false : child.kill(signal)),
    exitInfo: () => exit,
    waitExit: async (timeoutMs = 30_000) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `${name} (pid ${child.pid}) did not exit within ${timeoutMs} ms; logs:\n${tail(all)}`,
              ),
            ),
          timeoutMs,
        );
      });
      try {
        const info = await Promise.race([exited, timeout]);
        await Promise.race([closed, sleep(1000)]);
        return info;
      } finally {
        clearTimeout(timer);
      }
    },
    stop: async (graceMs = 15_000) => {
      if (!exit) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      await Promise.race([closed, sleep(1000)]);
      running.delete(handle);
      return exit!;
    },
    request,
    register: async (email, password = 'password-123') => {
      const res = await request('/api/auth/register', {
        method: 'POST',
        json: { email: email ?? `p_${randomBytes(5).toString('hex')}@example.org`, password },
      });
      if (res.status !== 201)
        throw new Error(`register on ${name} failed: ${res.status} ${await res.text()}`);
      const b = (await res.json()) as { accessToken: string; user: { id: number; email: string } };
      return { token: b.accessToken, user: b.user };
    },
  };
  running.add(handle);

  if (opts.waitForLive === false) return handle;

  const timeoutMs = opts.liveTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exit) {
      await Promise.race([closed, sleep(1000)]);
      running.delete(handle);
      throw new Error(`${name} exited (${JSON.stringify(exit)}) before it was live; logs:\n${tail(all)}`);
    }
    try {
      const res = await fetch(`${url}/api/health/live`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return handle;
      await res.body?.cancel();
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      running.delete(handle);
      throw new Error(`${name} was not live within ${timeoutMs} ms; logs:\n${tail(all)}`);
    }
    await sleep(100);
  }
}

/** Starts several processes at once; if one fails to start, stops the others and rethrows. */
export async function startProcesses(list: StartProcessOptions[]): Promise<BackendProcess[]> {
  const settled = await Promise.allSettled(list.map((o) => startProcess(o)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(settled.map((s) => (s.status === 'fulfilled' ? s.value.stop() : undefined)));
    throw failed.reason;
  }
  return settled.map((s) => (s as PromiseFulfilledResult<BackendProcess>).value);
}

/** Stops every process started by this test file (SIGTERM, then SIGKILL). Use in `afterAll`. */
export async function stopAllProcesses(graceMs = 15_000): Promise<void> {
  await Promise.all([...running].map((p) => p.stop(graceMs)));
}

/** Spawns a process that is expected to exit (e.g. on a bad configuration) and waits for it. */
export async function runProcessToExit(
  opts: Omit<StartProcessOptions, 'waitForLive'>,
  timeoutMs = 20_000,
): Promise<ExitInfo & { stdout: string; stderr: string; logs: string }> {
  const p = await startProcess({ ...opts, waitForLive: false });
  try {
    const info = await p.waitExit(timeoutMs);
    return { ...info, stdout: p.stdout(), stderr: p.stderr(), logs: p.logs() };
  } finally {
    await p.stop(1000);
  }
}

/** Value of a Prometheus sample, e.g. `metricValue(text, 'segmentation_jobs_total', { result: 'completed' })`; 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      have[kv[1]] = kv[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

function tail(text: string, max = 8000): string {
  return text.length > max ? `…${text.slice(-max)}` : text;
}
