import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

/**
 * `npm run <script>` exactly as an operator (or a container's CMD) starts it, for the signal tests:
 * the SIGTERM goes to the npm process, never to node directly.
 */
export const REPO_ROOT = path.resolve(__dirname, '../..');

export interface NpmRun {
  child: ChildProcess;
  pid: number;
  logs(): string;
  /** Parsed JSON log lines (npm's own banner and any other non-JSON line skipped). */
  jsonLines(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The node process npm started (searched below npm's pid), or undefined. */
  nodeDescendant(): number | undefined;
}

export function npmRun(script: string, env: NodeJS.ProcessEnv): NpmRun {
  const child = spawn('npm', ['run', script], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let all = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (all += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (all += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    pid: child.pid!,
    logs: () => all,
    jsonLines: () =>
      all
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    exited,
    nodeDescendant: () => descendants(child.pid!).find((pid) => commandOf(pid)?.[0]?.endsWith('node')),
  };
}

/** Pids below `pid` (children of every thread, recursively), from /proc. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const c of children.split(/\s+/).filter(Boolean).map(Number)) out.push(c, ...descendants(c));
  }
  return out;
}

/** argv of a live process, undefined once it is gone. */
export function commandOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** True while `pid` is alive and still runs `script` (so a reused pid does not count). */
export function stillRuns(pid: number, script: string): boolean {
  const argv = commandOf(pid);
  if (!argv) return false;
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    if (state === 'Z') return false;
  } catch {
    return false;
  }
  return argv.some((a) => a.endsWith(script));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor(
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export async function httpStatus(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000), redirect: 'manual' });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}
