import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { freeLoopbackPort, spawnWatchdog } from './pg-instance';

/**
 * A Redis 7 server of its own for fault tests, on a free loopback port, without any persistence (no
 * RDB, no AOF): {@link RedisInstance.stop} + {@link RedisInstance.start} is a restart that loses every
 * key, like a cache node replaced in production. Nothing here touches the shared server on 6379.
 *
 * A detached watchdog kills the server (by its pid file) and deletes its directory once the test
 * process is gone, however it ended.
 */
export interface RedisInstance {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** SHUTDOWN NOSAVE; resolves when the process has exited. No-op when stopped. */
  stop(): Promise<void>;
  /** Starts again on the same port, empty. No-op when running. */
  start(): Promise<void>;
  /** FLUSHALL (every key of every database). */
  flushAll(): Promise<void>;
  /** A new ioredis client on this server (the caller quits it). */
  client(): Redis;
  /** Stops (SIGKILL if it does not exit) and deletes everything. Idempotent. */
  destroy(): Promise<void>;
  isRunning(): boolean;
}

export async function startRedis(): Promise<RedisInstance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'spheroseg-redis-'));
  const pidfile = path.join(dir, 'redis.pid');
  const port = await freeLoopbackPort();
  const url = `redis://127.0.0.1:${port}`;
  const watchdog = spawnWatchdog(
    process.pid,
    `kill -9 $(cat '${pidfile}' 2>/dev/null) 2>/dev/null; rm -rf '${dir}'`,
  );

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let destroyed = false;
  let output = '';

  const command = async (...args: [string, ...string[]]): Promise<unknown> => {
    const c = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return await c.call(...args);
    } finally {
      c.disconnect();
    }
  };

  const start = async () => {
    if (child || destroyed) return;
    output = '';
    const p = spawn(
      'redis-server',
      redisServerArgs(dir, port, pidfile),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    p.stdout!.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-8000)));
    p.stderr!.setEncoding('utf8').on('data', (c: string) => (output = (output + c).slice(-8000)));
    child = p;
    exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    void exited.then(() => {
      if (child === p) child = undefined;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await command('PING')) === 'PONG') return;
      } catch {
        /* not listening yet */
      }
      if (!child) throw new Error(`redis-server on ${port} exited at start:\n${output}`);
      if (Date.now() > deadline)
        throw new Error(`redis-server on ${port} did not answer within 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async () => {
    const p = child;
    if (!p) return;
    try {
      await command('SHUTDOWN', 'NOSAVE');
    } catch {
      /* the connection drops when the server exits: expected */
    }
    const killer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
    child = undefined;
  };

  // Outside Jest (scripts), kill the server when this process exits; in Jest the watchdog does it.
  const onExit = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const instance: RedisInstance = {
    url,
    port,
    start,
    stop,
    isRunning: () => child !== undefined,
    flushAll: async () => {
      await command('FLUSHALL');
    },
    client: () => new Redis(url),
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      process.removeListener('exit', onExit);
      try {
        if (child) {
          child.kill('SIGKILL');
          await exited;
        }
      } finally {
        if (watchdog.pid) {
          try {
            process.kill(watchdog.pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };

  try {
    await start();
  } catch (err) {
    await instance.destroy();
    throw err;
  }
  return instance;
}

/** Common redis-server arguments: loopback, no persistence, a pid file the watchdog can find. */
export function redisServerArgs(dir: string, port: number, pidfile = path.join(dir, `redis-${port}.pid`)): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--pidfile',
    pidfile,
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    '--loglevel',
    'warning',
  ];
}
