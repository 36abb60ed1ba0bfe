import { ChildProcess, execFile, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { asRoot, chownToPg, freeLoopbackPort, PG_BIN_DIR, PgInstance, runPg, spawnWatchdog, startPostgres } from './pg-instance';
import { redisServerArgs } from './redis-instance';
import { sleep, until } from './checks';

/**
 * Redis and PostgreSQL topologies of their own for the topology suite (test/topology): a 3-master
 * Redis Cluster, a Redis primary + replica watched by 3 Sentinels, a PostgreSQL primary with one
 * streaming replica. Everything runs on free loopback ports in fresh temporary directories; nothing
 * touches the shared servers on 5432/6379. Every topology has a detached watchdog that kills its
 * servers and deletes its directory once the test process is gone, however it ended; `destroy()` does
 * the same at once (idempotent).
 *
 * ```ts
 * const cluster = await startRedisCluster();   // REDIS_CLUSTER_NODES = cluster.nodes
 * const s = await startRedisSentinel();        // REDIS_SENTINELS = s.sentinels, REDIS_SENTINEL_NAME = s.name
 * await s.stopPrimary(); await s.waitForPromotion();
 * const pg = await startPostgresWithReplica(); // DATABASE_URL = pg.primary.urlFor(db), DATABASE_REPLICA_URLS = pg.replica.urlFor(db)
 * ```
 */


/** Runs `redis-cli` with `args` (e.g. `['-p', '7000', 'CLUSTER', 'INFO']`); resolves with stdout. */
export function redisCli(args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `redis-cli -p port …`, or undefined when the server does not answer. */
async function tryCli(port: number, ...args: string[]): Promise<string | undefined> {
  try {
    return await redisCli(['-h', '127.0.0.1', '-p', String(port), ...args], 3000);
  } catch {
    return undefined;
  }
}

/** One redis-server (or sentinel) child of a topology. */
interface RedisProc {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
  output(): string;
}

/**
 * A directory with a watchdog that SIGKILLs every server whose pid file is in it, then deletes it, once
 * this process is gone. Returns the directory and a function that does the same now.
 */
function redisWorkspace(prefix: string): {
  dir: string;
  procs: RedisProc[];
  spawnServer(port: number, args: string[]): Promise<RedisProc>;
  destroy(): Promise<void>;
} {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const kill = `for f in '${dir}'/*.pid; do [ -f "$f" ] && kill -9 $(cat "$f") 2>/dev/null; done; rm -rf '${dir}'`;
  const watchdog = spawnWatchdog(process.pid, kill);
  const procs: RedisProc[] = [];
  let destroyed = false;

  const spawnServer = async (port: number, args: string[]): Promise<RedisProc> => {
    let out = '';
    const child = spawn('redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out = (out + c).slice(-8000)));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out = (out + c).slice(-8000)));
    let gone = false;
    const exited = new Promise<void>((resolve) => child.once('exit', () => ((gone = true), resolve())));
    const proc: RedisProc = { port, child, exited, output: () => out };
    procs.push(proc);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if ((await tryCli(port, 'PING'))?.trim() === 'PONG') return proc;
      if (gone) throw new Error(`redis-server ${args.join(' ')} exited at start:\n${out}`);
      if (Date.now() > deadline)
        throw new Error(`redis-server on ${port} did not answer within 10 s:\n${out}`);
      await sleep(50);
    }
  };

  return {
    dir,
    procs,
    spawnServer,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      for (const p of procs) p.child.kill('SIGKILL');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(procs.map((p) => p.exited)),
        new Promise<void>((r) => (timer = setTimeout(r, 5000))),
      ]);
      clearTimeout(timer);
      try {
        if (watchdog.pid) process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ─── Redis Cluster ────────────────────────────────────────────────────────────────────────────────

export interface RedisClusterTopology {
  /** `127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`: the value of REDIS_CLUSTER_NODES. */
  nodes: string;
  ports: number[];
  /** `redis-cli -c -p <first node> …args` (follows MOVED redirections). */
  cli(...args: string[]): Promise<string>;
  /** `CLUSTER KEYSLOT key`. */
  keySlot(key: string): Promise<number>;
  /** Every key matching `pattern` on every master (SCAN on each node). */
  keys(pattern: string): Promise<string[]>;
  destroy(): Promise<void>;
}

/** `masters` redis-servers in cluster mode, joined with `redis-cli --cluster create`; resolves at `cluster_state:ok`. */
export async function startRedisCluster(masters = 3): Promise<RedisClusterTopology> {
  const ws = redisWorkspace('spheroseg-rcluster-');
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) {
      const port = await freeLoopbackPort();
      const busPort = await freeLoopbackPort();
      ports.push(port);
      await ws.spawnServer(port, [
        ...redisServerArgs(ws.dir, port),
        '--cluster-enabled',
        'yes',
        '--cluster-port',
        String(busPort),
        '--cluster-config-file',
        path.join(ws.dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
      ]);
    }
    await redisCli(
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      60_000,
    );
    await until(
      'cluster_state:ok on every node',
      async () => {
        const infos = await Promise.all(ports.map((p) => tryCli(p, 'CLUSTER', 'INFO')));
        return infos.every(
          (i) =>
            !!i &&
            /cluster_state:ok/.test(i) &&
            /cluster_slots_ok:16384/.test(i) &&
            new RegExp(`cluster_known_nodes:${masters}\\b`).test(i),
        );
      },
      30_000,
    );
    const cli = (...args: string[]) => redisCli(['-c', '-h', '127.0.0.1', '-p', String(ports[0]), ...args]);
    return {
      nodes: ports.map((p) => `127.0.0.1:${p}`).join(','),
      ports,
      cli,
      keySlot: async (key) => Number((await cli('CLUSTER', 'KEYSLOT', key)).trim()),
      keys: async (pattern) => {
        const all: string[] = [];
        for (const p of ports) {
          const out = await redisCli(['-h', '127.0.0.1', '-p', String(p), '--scan', '--pattern', pattern]);
          all.push(...out.split('\n').filter(Boolean));
        }
        return all;
      },
      destroy: ws.destroy,
    };
  } catch (err) {
    await ws.destroy();
    throw err;
  }
}

// ─── Redis Sentinel ───────────────────────────────────────────────────────────────────────────────

export interface RedisSentinelTopology {
  /** `127.0.0.1:s1,127.0.0.1:s2,127.0.0.1:s3`: the value of REDIS_SENTINELS. */
  sentinels: string;
  /** The master name: the value of REDIS_SENTINEL_NAME. */
  name: string;
  /** Port of the server that is primary at start. */
  primaryPort: number;
  /** Port of its replica (the primary after {@link stopPrimary} + {@link waitForPromotion}). */
  replicaPort: number;
  sentinelPorts: number[];
  /** `SHUTDOWN NOSAVE` on the primary; resolves once its process has exited. */
  stopPrimary(): Promise<void>;
  /** Resolves once every sentinel names the replica as master and the replica reports `role:master`. */
  waitForPromotion(timeoutMs?: number): Promise<void>;
  /** Port the sentinels currently name as master. */
  currentMasterPort(): Promise<number | undefined>;
  /** `redis-cli -p <port> …args`. */
  cli(port: number, ...args: string[]): Promise<string>;
  destroy(): Promise<void>;
}

/**
 * A primary, one replica and 3 sentinels (quorum 2, down-after 1000 ms, failover-timeout 5000 ms).
 * Resolves once the replica is in sync and every sentinel knows the replica and the other sentinels,
 * so a failover can start as soon as the primary is gone.
 */
export async function startRedisSentinel(name = 'spheroseg'): Promise<RedisSentinelTopology> {
  const ws = redisWorkspace('spheroseg-rsentinel-');
  try {
    const primaryPort = await freeLoopbackPort();
    const replicaPort = await freeLoopbackPort();
    const primary = await ws.spawnServer(primaryPort, redisServerArgs(ws.dir, primaryPort));
    await ws.spawnServer(replicaPort, [
      ...redisServerArgs(ws.dir, replicaPort),
      '--replicaof',
      '127.0.0.1',
      String(primaryPort),
    ]);
    await until(
      'replica in sync',
      async () => /master_link_status:up/.test((await tryCli(replicaPort, 'INFO', 'replication')) ?? ''),
      15_000,
    );

    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freeLoopbackPort();
      sentinelPorts.push(port);
      const conf = path.join(ws.dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          'daemonize no',
          `dir ${ws.dir}`,
          `pidfile ${path.join(ws.dir, `sentinel-${port}.pid`)}`,
          'loglevel warning',
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      await ws.spawnServer(port, [conf, '--sentinel']);
    }
    await until(
      'every sentinel knows the replica and the 2 other sentinels',
      async () => {
        for (const p of sentinelPorts) {
          const replicas = await tryCli(p, 'SENTINEL', 'REPLICAS', name);
          const others = await tryCli(p, 'SENTINEL', 'SENTINELS', name);
          if (!replicas?.includes(String(replicaPort))) return false;
          if (!others || sentinelPorts.filter((o) => o !== p).some((o) => !others.includes(String(o))))
            return false;
        }
        return true;
      },
      20_000,
      200,
    );

    const currentMasterPort = async () => {
      const out = await tryCli(sentinelPorts[0], 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
      const port = out?.split('\n')[1]?.trim();
      return port ? Number(port) : undefined;
    };
    return {
      sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      name,
      primaryPort,
      replicaPort,
      sentinelPorts,
      currentMasterPort,
      cli: (port, ...args) => redisCli(['-h', '127.0.0.1', '-p', String(port), ...args]),
      stopPrimary: async () => {
        await tryCli(primaryPort, 'SHUTDOWN', 'NOSAVE');
        const killer = setTimeout(() => primary.child.kill('SIGKILL'), 5000);
        await primary.exited;
        clearTimeout(killer);
      },
      waitForPromotion: (timeoutMs = 30_000) =>
        until(
          'sentinels promoted the replica',
          async () => {
            for (const p of sentinelPorts) {
              const out = await tryCli(p, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
              if (out?.split('\n')[1]?.trim() !== String(replicaPort)) return false;
            }
            return /role:master/.test((await tryCli(replicaPort, 'INFO', 'replication')) ?? '');
          },
          timeoutMs,
          200,
        ),
      destroy: ws.destroy,
    };
  } catch (err) {
    await ws.destroy();
    throw err;
  }
}

// ─── PostgreSQL primary + streaming replica ──────────────────────────────────────────────────────

/** A replica offers what a primary does, except restart (the tests stop and start it). */
export type PgReplica = Omit<PgInstance, 'restart'>;

export interface PgReplicationTopology {
  primary: PgInstance;
  replica: PgReplica;
  /** Creates database `name` on the primary and waits until the replica has it. */
  createDatabase(name: string): Promise<void>;
  /** Resolves once the replica has replayed everything the primary had written when called. */
  waitForReplay(timeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A PostgreSQL 15 primary (pg-instance, `wal_level=replica`; initdb's trust pg_hba already allows
 * loopback replication) and a hot-standby replica made with `pg_basebackup -R -X stream`, on its own port.
 */
export async function startPostgresWithReplica(): Promise<PgReplicationTopology> {
  const primary = await startPostgres({
    settings: { wal_level: 'replica', max_wal_senders: '5', hot_standby: 'on' },
  });
  const root = mkdtempSync(path.join(tmpdir(), 'spheroseg-pgreplica-'));
  const data = path.join(root, 'data');
  const sock = path.join(root, 'sock');
  const log = path.join(root, 'postgres.log');
  mkdirSync(sock);
  chownToPg(root);
  chownToPg(sock);
  const watchdog = spawnWatchdog(
    process.pid,
    `${asRoot ? 'runuser -u postgres -- ' : ''}${path.join(PG_BIN_DIR, 'pg_ctl')} -D '${data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '${root}'`,
  );
  const port = await freeLoopbackPort();
  let running = false;
  let destroyed = false;
  const ctl = (args: string[]) => runPg('pg_ctl', ['-D', data, ...args]);
  const urlFor = (name: string) => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
  const replica: PgReplica = {
    url: urlFor('postgres'),
    port,
    urlFor,
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
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      try {
        if (running) await ctl(['-w', '-t', '30', '-m', 'immediate', 'stop']).catch(() => undefined);
        running = false;
      } finally {
        try {
          if (watchdog.pid) process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        rmSync(root, { recursive: true, force: true });
      }
    },
  };

  const query = async <T>(url: string, sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = new Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  const topology: PgReplicationTopology = {
    primary,
    replica,
    createDatabase: async (name) => {
      await query(primary.url, `CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      await topology.waitForReplay();
      await query(urlFor(name), 'SELECT 1');
    },
    waitForReplay: async (timeoutMs = 15_000) => {
      // The insert position, not pg_current_wal_lsn() (the write position): with synchronous_commit=off
      // a commit returns before its WAL record is written, so the write position can still be behind
      // transactions that are already visible on the primary.
      const [{ lsn }] = await query<{ lsn: string }>(primary.url, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
      await until(
        `replica replayed up to ${lsn}`,
        async () => {
          try {
            const [r] = await query<{ caught: boolean }>(
              replica.url,
              'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught',
              [lsn],
            );
            return r.caught;
          } catch {
            return false;
          }
        },
        timeoutMs,
      );
    },
    destroy: async () => {
      await Promise.allSettled([replica.destroy(), primary.destroy()]);
    },
  };

  try {
    await runPg('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      data,
      '-R',
      '-X',
      'stream',
      '--no-sync',
    ]);
    appendFileSync(
      path.join(data, 'postgresql.conf'),
      `\n# streaming replica (topology tests)\nport = ${port}\nunix_socket_directories = '${sock}'\nhot_standby = on\n`,
    );
    await replica.start();
    await topology.waitForReplay(30_000);
  } catch (err) {
    await topology.destroy();
    throw err;
  }
  return topology;
}
