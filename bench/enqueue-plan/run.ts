/**
 * The open-task check of `spheroseg_enqueue` on a connection that used the function while the table was
 * small (PL/pgSQL keeps the plans it made then), before and after migration EnqueueProbe: a fresh
 * database per round, 200 enqueues on the connection while `queue_jobs` holds a few open tasks, then
 * another user's 25 000 open tasks inserted (no ANALYZE), then `BENCH_PLAN_CALLS` enqueues on that
 * connection and as many on a new one. Wall time per call and PostgreSQL CPU per call, from /proc.
 * Rounds alternate the two functions (`before`: the migration undone, its `down`).
 *
 *   npx nest build && node dist/bench/enqueue-plan/run.js
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { benchEnv, f1, f3, invocation, migratedDatabase, runMain, table, undoMigrationsThrough, writeResults } from '../common/harness';
import { cpuSecondsByComm, waitForQuiet } from '../common/probe';

const CALLS = Number(process.env.BENCH_PLAN_CALLS ?? 500);
const ROUNDS = Number(process.env.BENCH_PLAN_ROUNDS ?? 2);
const WARM_CALLS = 200;
const BACKLOG = 25_000;

type Variant = 'before' | 'after';

async function round(variant: Variant) {
  const env = benchEnv(`plan_${variant}`);
  const ds = await migratedDatabase(env);
  const clients: Client[] = [];
  try {
    if (variant === 'before') {
      // The old function: EnqueueProbe undone (with the migrations after it, which replace other functions).
      await undoMigrationsThrough(ds, 'EnqueueProbe1765700000000');
    }
    const [a, b] = (await ds.query(`INSERT INTO users (email, password_hash) SELECT 'plan' || g || '@example.org', 'x' FROM generate_series(1, 2) g RETURNING id`)).map(
      (r: { id: number }) => r.id,
    );
    const images = async (user: number, n: number): Promise<number[]> =>
      (
        await ds.query(
          `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
           SELECT $1::int, 'a.png', $1::int || '/' || g || '.png', 'image/png', 1, 1, 1 FROM generate_series(1, $2::int) g RETURNING id`,
          [user, n],
        )
      ).map((r: { id: number }) => r.id);
    const aImages = await images(a, WARM_CALLS + 2 * CALLS);
    const bImages = await images(b, BACKLOG);
    const connect = async () => {
      const c = new Client({ connectionString: env.databaseUrl });
      await c.connect();
      clients.push(c);
      return c;
    };
    let next = 0;
    const enqueue = (c: Client, img: number) =>
      c.query('SELECT * FROM spheroseg_enqueue($1, $2::int[], $3::int[], $4::int[], $5::uuid[], $6::smallint[], $7)', [a, [], [1], [img], [randomUUID()], [1], 1_000_000]);
    const timed = async (c: Client) => {
      const c0 = cpuSecondsByComm('postgres');
      const t0 = performance.now();
      for (let i = 0; i < CALLS; i++) await enqueue(c, aImages[next++]);
      return { ms: (performance.now() - t0) / CALLS, cpuMs: ((cpuSecondsByComm('postgres') - c0) * 1000) / CALLS };
    };
    const used = await connect();
    for (let i = 0; i < WARM_CALLS; i++) await enqueue(used, aImages[next++]);
    await ds.query(
      `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
       SELECT gen_random_uuid(), gen_random_uuid()::text, id, $1, 'queued', 1 FROM unnest($2::int[]) id`,
      [b, bImages],
    );
    const stale = await timed(used);
    const fresh = await timed(await connect());
    return { stale, fresh };
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await ds.destroy();
    await env.cleanup();
  }
}

runMain(async () => {
  const busy = await waitForQuiet();
  const runs: Record<Variant, Array<Awaited<ReturnType<typeof round>>>> = { before: [], after: [] };
  for (let r = 0; r < ROUNDS; r++) for (const v of ['before', 'after'] as const) runs[v].push(await round(v));
  const list = (xs: number[]) => xs.map(f3).join(', ');
  const rows = (['before', 'after'] as const).map((v) => [
    v === 'before' ? 'before EnqueueProbe (anti-join)' : 'EnqueueProbe (`OFFSET 0`: a subplan per image)',
    list(runs[v].map((x) => x.stale.ms)),
    list(runs[v].map((x) => x.stale.cpuMs)),
    list(runs[v].map((x) => x.fresh.ms)),
    list(runs[v].map((x) => x.fresh.cpuMs)),
  ]);
  const body = [
    `A fresh database per round; one connection enqueues ${WARM_CALLS} images of one user (one per call) while \`queue_jobs\` holds only those, then another user's ${BACKLOG} open tasks are inserted (no ANALYZE), then ${CALLS} more enqueues on that connection and ${CALLS} on a new one. ${ROUNDS} alternating rounds per function; each figure below is one round. PostgreSQL CPU: all postgres processes, from /proc. Machine busy ${f1(busy)} cores before.`,
    '',
    table(['function', 'ms per enqueue, the connection that used it on a small table', 'PostgreSQL CPU ms', 'ms per enqueue, a new connection', 'PostgreSQL CPU ms'], rows),
  ].join('\n');
  console.log(body);
  writeResults('enqueue-plan', 'Enqueue open-task check on a connection that planned it on a small table', invocation(), body);
});
