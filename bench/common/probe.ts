/** Prometheus text parsing and CPU accounting from /proc (Linux), for "where does the time go". */
import { execSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** Sum of the samples of `name` whose labels include `labels` (the tests' Prometheus parser). */
export { metricValue as metric } from '../../test/support/processes';

export async function scrape(url: string): Promise<string> {
  return (await fetch(`${url}/api/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
}

const TICK = (() => {
  try {
    return Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) used so far by one process. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICK; // utime, stime
  } catch {
    return NaN;
  }
}

/** CPU seconds of every process whose comm is `comm` (e.g. all PostgreSQL backends). */
export function cpuSecondsByComm(comm: string): number {
  let sum = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== comm) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      sum += (Number(fields[11]) + Number(fields[12])) / TICK;
    } catch {
      /* process gone */
    }
  }
  return sum;
}

/** Busy and total CPU seconds of the whole machine (all cores) from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / TICK, total: total / TICK };
}

export interface CpuSnapshot {
  at: number;
  perPid: Map<string, number>;
  postgres: number;
  redis: number;
  machine: { busy: number; total: number };
}

export function cpuSnapshot(pids: Record<string, number>): CpuSnapshot {
  const perPid = new Map<string, number>();
  for (const [k, pid] of Object.entries(pids)) perPid.set(k, cpuSeconds(pid));
  return {
    at: performance.now(),
    perPid,
    postgres: cpuSecondsByComm('postgres'),
    redis: cpuSecondsByComm('redis-server'),
    machine: machineCpu(),
  };
}

/** CPU seconds per component between two snapshots. */
export function cpuDelta(a: CpuSnapshot, b: CpuSnapshot): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const [k, v] of b.perPid) out.push([k, v - (a.perPid.get(k) ?? 0)]);
  out.push(['postgres (all backends)', b.postgres - a.postgres]);
  out.push(['redis-server', b.redis - a.redis]);
  out.push(['machine total (busy)', b.machine.busy - a.machine.busy]);
  return out;
}

/**
 * Waits (up to `maxWaitMs`) until the machine's busy CPU over 1 s is below `maxBusyCores` (other
 * people's tests and benches share this machine). Returns the last measured busy cores, reported
 * next to the figures so that a noisy run is recognisable.
 */
export async function waitForQuiet(maxBusyCores = 0.5, maxWaitMs = Number(process.env.BENCH_QUIET_WAIT_MS ?? 60_000)): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const a = machineCpu();
    await new Promise((r) => setTimeout(r, 1000));
    const b = machineCpu();
    const busy = (b.busy - a.busy) / ((b.total - a.total) / os.availableParallelism());
    if (busy <= maxBusyCores || Date.now() > deadline) return busy;
  }
}

/** Self time of a V8 .cpuprofile grouped by where the code lives (package, src file, node internals). */
export function summariseCpuProfile(file: string, top = 14): { totalMs: number; byPlace: Array<[string, number]>; byFunction: Array<[string, number]> } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
    samples: number[];
    timeDeltas: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
  const place = (url: string, fn: string): string => {
    if (!url) return fn === '(garbage collector)' ? '(gc)' : fn === '(idle)' ? '(idle)' : fn === '(program)' ? '(program/native)' : `(native) ${fn}`;
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (nm) return nm[1];
    const src = /\/dist\/(src\/[^:]+)/.exec(url);
    if (src) return src[1];
    if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
    return url.replace(/^.*\//, '');
  };
  const places = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const p = place(n.callFrame.url, n.callFrame.functionName);
    if (p === '(idle)') continue;
    total += us;
    places.set(p, (places.get(p) ?? 0) + us);
    const fk = `${n.callFrame.functionName || '(anonymous)'} ${p}`;
    fns.set(fk, (fns.get(fk) ?? 0) + us);
  }
  const sort = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, v / 1000] as [string, number]);
  return { totalMs: total / 1000, byPlace: sort(places), byFunction: sort(fns) };
}
