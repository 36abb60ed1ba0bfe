/**
 * The pipeline bench's own PostgreSQL 15 and Redis servers (loopback, free ports, deleted at the end):
 * the shared servers on 5432/6379 also serve other people's tests, so their processes' CPU cannot be
 * told apart from the bench's. The PostgreSQL server keeps the durability settings of the shared one
 * (fsync, synchronous_commit, full_page_writes on; 128 MB shared buffers) and loads
 * pg_stat_statements, so every statement a task causes is counted.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from 'pg';
import { startPostgres, type PgInstance } from '../../test/support/pg-instance';
import { startRedis, type RedisInstance } from '../../test/support/redis-instance';
import { runCleanups } from '../common/harness';

const TICK = 100; // CLK_TCK on Linux

export interface BenchServers {
  pg: PgInstance;
  redis: RedisInstance;
  postmasterPid: number;
  redisPid: number;
}

export async function startBenchServers(): Promise<BenchServers> {
  const pg = await startPostgres({
    settings: {
      fsync: 'on',
      synchronous_commit: process.env.BENCH_PG_SYNCHRONOUS_COMMIT ?? 'on', // 'off' only to find where latency goes, never for a reported figure
      full_page_writes: 'on',
      shared_buffers: "'128MB'",
      shared_preload_libraries: "'pg_stat_statements'",
      'pg_stat_statements.track': "'all'",
      'pg_stat_statements.max': '2000',
      // Planning counted too (plans and plan time per statement); off by default, as it costs a little.
      ...(process.env.BENCH_PG_TRACK_PLANNING === '1' ? { 'pg_stat_statements.track_planning': 'on' } : {}),
    },
  });
  const redis = await startRedis();
  process.once('exit', () => void pg.destroy());
  const c = new Client({ connectionString: pg.url });
  await c.connect();
  const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const postmasterPid = ppidOf(rows[0].pid); // while the backend still exists
  await c.end();
  if (!statFields(postmasterPid)) throw new Error(`no PostgreSQL postmaster process found (backend ${rows[0].pid}, parent ${postmasterPid})`);
  console.log(`bench servers: PostgreSQL ${pg.url} (postmaster ${postmasterPid}), Redis ${redis.url}`);
  const r = redis.client();
  const info = await r.info('server');
  r.disconnect();
  const redisPid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  return { pg, redis, postmasterPid, redisPid };
}

export async function stopBenchServers(s: BenchServers): Promise<void> {
  await s.pg.destroy();
  await s.redis.destroy();
}

/** Stops the servers after the harness's own cleanups (which need them to drop the database). */
export async function withBenchServers<T>(fn: (s: BenchServers) => Promise<T>): Promise<T> {
  const s = await startBenchServers();
  try {
    return await fn(s);
  } finally {
    await runCleanups().catch(() => undefined);
    await stopBenchServers(s);
  }
}

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

function ppidOf(pid: number): number {
  return Number(statFields(pid)?.[1]);
}

/**
 * CPU seconds of one PostgreSQL server: the postmaster (with the CPU of its children that already
 * exited, which the kernel adds to cutime/cstime) plus every live child (backends, WAL writer,
 * checkpointer, autovacuum, stats).
 */
export function postgresCpuSeconds(postmasterPid: number): number {
  const pm = statFields(postmasterPid);
  if (!pm) return NaN;
  const ticks = (f: string[], from: number, to: number) => f.slice(from, to + 1).reduce((a, x) => a + (Number(x) || 0), 0);
  let sum = ticks(pm, 11, 14);
  for (const [, f] of postgresChildren(postmasterPid)) sum += ticks(f, 11, 12);
  return sum / TICK;
}

/** The live children of a postmaster: pid and `/proc/<pid>/stat` fields. */
function postgresChildren(postmasterPid: number): Array<[number, string[]]> {
  const out: Array<[number, string[]]> = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(Number(d));
    if (f && Number(f[1]) === postmasterPid) out.push([Number(d), f]);
  }
  return out;
}

export function processCpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / TICK : NaN;
}

/** What wakes a process, counted by the kernel: read and write system calls (`/proc/<pid>/io`, every thread) and context switches (every thread's `status`). */
export interface WakeCounts {
  reads: number;
  writes: number;
  /** Voluntary context switches: the process slept (waiting for I/O) and was woken. */
  voluntary: number;
  /** Involuntary ones: preempted while it had work (the cores were busy). */
  involuntary: number;
  /** CPU seconds spent in the kernel on the process's behalf (`stat` stime, every thread): system calls, the loopback TCP they drive, page faults. */
  kernelSeconds: number;
}

const ZERO_WAKES: WakeCounts = { reads: 0, writes: 0, voluntary: 0, involuntary: 0, kernelSeconds: 0 };

export function wakeCounts(pid: number): WakeCounts {
  const out = { ...ZERO_WAKES };
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    out.reads = Number(/^syscr:\s+(\d+)/m.exec(io)?.[1] ?? 0);
    out.writes = Number(/^syscw:\s+(\d+)/m.exec(io)?.[1] ?? 0);
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const st = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
    }
    out.kernelSeconds = Number(statFields(pid)?.[12] ?? 0) / TICK;
  } catch {
    // gone (an exited PostgreSQL child): counts nothing
  }
  return out;
}

/** {@link wakeCounts} of a PostgreSQL server: the postmaster and every live child (children that exited meanwhile are not counted). */
export function postgresWakeCounts(postmasterPid: number): WakeCounts {
  const sum = wakeCounts(postmasterPid);
  for (const [pid] of postgresChildren(postmasterPid)) {
    const c = wakeCounts(pid);
    for (const k of Object.keys(sum) as Array<keyof WakeCounts>) sum[k] += c[k];
  }
  return sum;
}

/** Resident set size of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** `INFO commandstats` as command → calls. */
export function parseCommandStats(info: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}
