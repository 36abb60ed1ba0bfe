import type { Client } from 'pg';
import type { BackendProcess } from './processes';

/** Checks shared by the process-level suites (faults, topology): polling, probes, task outcomes in PostgreSQL. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until `fn()` is true; throws `what` after `timeoutMs`. */
export async function until(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
  stepMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(stepMs);
  }
}

/** Status of GET `path` on `p` within `timeoutMs`, or 0 when it did not answer. */
export async function statusOf(p: BackendProcess, path: string, timeoutMs = 3000): Promise<number> {
  try {
    const res = await p.request(path, { timeoutMs });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

export interface TaskSummary {
  byStatus: Record<string, number>;
  /** Tasks (of the given ids) with their number of result rows, when that is not exactly 1. */
  notOneResult: Array<{ taskId: string; results: number }>;
  attempts: Record<string, number>;
}

/** Status counts and result-row counts of `taskIds`, read from PostgreSQL. */
export async function summarize(db: Client, taskIds: string[]): Promise<TaskSummary> {
  const s = await db.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM queue_jobs WHERE task_id = ANY($1::uuid[]) GROUP BY status',
    [taskIds],
  );
  const r = await db.query<{ task_id: string; n: number }>(
    `SELECT q.task_id, count(r.*)::int AS n FROM queue_jobs q LEFT JOIN segmentation_results r ON r.task_id = q.task_id
      WHERE q.task_id = ANY($1::uuid[]) GROUP BY q.task_id`,
    [taskIds],
  );
  const a = await db.query<{ task_id: string; attempts: number }>(
    'SELECT task_id, attempts FROM queue_jobs WHERE task_id = ANY($1::uuid[])',
    [taskIds],
  );
  return {
    byStatus: Object.fromEntries(s.rows.map((x) => [x.status, x.n])),
    notOneResult: r.rows.filter((x) => x.n !== 1).map((x) => ({ taskId: x.task_id, results: x.n })),
    attempts: Object.fromEntries(a.rows.map((x) => [x.task_id, x.attempts])),
  };
}

/** Polls PostgreSQL until every task of `taskIds` is completed; returns the last summary either way. */
export async function waitAllCompleted(
  db: Client,
  taskIds: string[],
  timeoutMs: number,
): Promise<TaskSummary> {
  const deadline = Date.now() + timeoutMs;
  let last: TaskSummary | undefined;
  for (;;) {
    try {
      last = await summarize(db, taskIds);
      if ((last.byStatus.completed ?? 0) === taskIds.length) return last;
    } catch {
      /* PostgreSQL restarting: try again */
    }
    if (Date.now() > deadline) return last ?? { byStatus: {}, notOneResult: [], attempts: {} };
    await sleep(200);
  }
}
