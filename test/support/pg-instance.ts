import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A PostgreSQL 15 server of its own for fault tests: initdb into a fresh temporary directory, trust
 * auth, loopback only, a free port, fsync off. Tests stop, start and restart it under a running app;
 * nothing here touches the shared server on 5432.
 *
 * ```ts
 * const pg = await startPostgres();        // pg.url = postgresql://postgres@127.0.0.1:<port>/postgres
 * await pg.stop('fast'); await pg.start(); // PostgreSQL down, then up again on the same port
 * await pg.destroy();                      // stop (immediate) and delete the directory; idempotent
 * ```
 *
 * PostgreSQL refuses to run as root: when this process is root, every binary runs as the `postgres`
 * OS user (`runuser`), in a directory owned by it. A detached watchdog stops the server and deletes
 * the directory as soon as the test process is gone, however it ended (Jest's `process.on('exit')`
 * inside a test file is the sandbox's and never fires), so a crashed run leaves nothing behind.
 */
export interface PgInstance {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** The URL of database `name` on this server. */
  urlFor(name: string): string;
  /** pg_ctl stop -w (default `fast`). No-op when stopped. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl start -w on the same port and data. No-op when running. */
  start(): Promise<void>;
  /** pg_ctl restart -w (default `fast`). */
  restart(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** Stops (immediate) and deletes everything. Idempotent. */
  destroy(): Promise<void>;
  isRunning(): boolean;
}

export const PG_BIN_DIR = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
/** PostgreSQL refuses to run as root: as root, its binaries run as the `postgres` OS user. */
export const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const PG_USER = 'postgres';

/** Runs a PostgreSQL binary (as the `postgres` user when root) and resolves with its stdout. */
export function runPg(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const file = asRoot ? 'runuser' : path.join(PG_BIN_DIR, bin);
  const argv = asRoot ? ['-u', PG_USER, '--', path.join(PG_BIN_DIR, bin), ...args] : args;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      argv,
      { timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${bin} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A detached shell that runs `cleanup` once process `pid` no longer exists. Returns it (kill it to disarm). */
export function spawnWatchdog(pid: number, cleanup: string): ChildProcess {
  const script = `while kill -0 ${pid} 2>/dev/null; do sleep 1; done; ${cleanup}`;
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

export function chownToPg(p: string): void {
  if (!asRoot) return;
  const { uid, gid } = pgIds();
  chownSync(p, uid, gid);
}

let ids: { uid: number; gid: number } | undefined;
/** uid/gid of the postgres OS user, looked up once. */
function pgIds(): { uid: number; gid: number } {
  if (ids) return ids;
  const uid = Number(execFileSync('id', ['-u', PG_USER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', PG_USER]).toString().trim());
  ids = { uid, gid };
  return ids;
}

export interface StartPostgresOptions {
  /** Extra `postgresql.conf` settings, e.g. `{ max_connections: '50' }`. */
  settings?: Record<string, string>;
}

/** initdb + start a fresh server on a free loopback port; resolves when it accepts connections. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgInstance> {
  const root = mkdtempSync(path.join(tmpdir(), 'spheroseg-pg-'));
  const data = path.join(root, 'data');
  const sock = path.join(root, 'sock');
  const log = path.join(root, 'postgres.log');
  mkdirSync(sock);
  chownToPg(root);
  chownToPg(sock);
  const port = await freeLoopbackPort();

  const ctl = (args: string[]) => runPg('pg_ctl', ['-D', data, ...args]);
  const watchdog = spawnWatchdog(
    process.pid,
    `${asRoot ? `runuser -u ${PG_USER} -- ` : ''}${path.join(PG_BIN_DIR, 'pg_ctl')} -D '${data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '${root}'`,
  );

  let running = false;
  let destroyed = false;
  // Outside Jest (scripts), stop the server when this process exits; in Jest the watchdog does it.
  const onExit = () => {
    if (destroyed || !running) return;
    try {
      execFileSync(
        asRoot ? 'runuser' : path.join(PG_BIN_DIR, 'pg_ctl'),
        [
          ...(asRoot ? ['-u', PG_USER, '--', path.join(PG_BIN_DIR, 'pg_ctl')] : []),
          '-D',
          data,
          '-m',
          'immediate',
          'stop',
        ],
        { stdio: 'ignore', timeout: 10_000 },
      );
    } catch {
      /* best effort */
    }
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const instance: PgInstance = {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    urlFor: (name) => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`,
    isRunning: () => running,
    start: async () => {
      if (running || destroyed) return;
      await ctl(['-l', log, '-w', '-t', '60', 'start']);
      running = true;
    },
    stop: async (mode = 'fast') => {
      if (!running) return;
      await ctl(['-w', '-t', '60', '-m', mode, 'stop']);
      running = false;
    },
    restart: async (mode = 'fast') => {
      await ctl(['-l', log, '-w', '-t', '60', '-m', mode, 'restart']);
      running = true;
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      process.removeListener('exit', onExit);
      try {
        if (running) await ctl(['-w', '-t', '30', '-m', 'immediate', 'stop']).catch(() => undefined);
        running = false;
      } finally {
        if (watchdog.pid) {
          try {
            process.kill(watchdog.pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        rmSync(root, { recursive: true, force: true });
      }
    },
  };

  try {
    await runPg('initdb', [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      PG_USER,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ]);
    const settings: Record<string, string> = {
      listen_addresses: "'127.0.0.1'",
      port: String(port),
      unix_socket_directories: `'${sock}'`,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      shared_buffers: "'32MB'",
      max_connections: '100',
      log_min_messages: 'warning',
      ...opts.settings,
    };
    appendFileSync(
      path.join(data, 'postgresql.conf'),
      '\n# fault tests\n' +
        Object.entries(settings)
          .map(([k, v]) => `${k} = ${v}`)
          .join('\n') +
        '\n',
    );
    await instance.start();
  } catch (err) {
    await instance.destroy();
    throw err;
  }
  return instance;
}
