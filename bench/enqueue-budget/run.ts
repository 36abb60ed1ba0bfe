/**
 * The admission check of an enqueue (MAX_PENDING_TASKS_PER_USER) with the per-user bound of migration
 * EnqueueBudget vs the exact count it replaced (the same database, EnqueueBudget and the migrations
 * after it undone and redone between rounds, alternating): `spheroseg_enqueue` called for one new image at a time by one caller,
 * for a user with a small and with a large backlog of open tasks. Wall time per call (round trip and
 * commit included) and PostgreSQL CPU per call, from /proc.
 *
 *   npx nest build && node dist/bench/enqueue-budget/run.js
 */
import { randomUUID } from 'node:crypto';
import { benchEnv, f1, invocation, migratedDatabase, runMain, table, undoMigrationsThrough, writeResults } from '../common/harness';
import { cpuSecondsByComm, waitForQuiet } from '../common/probe';

const CALLS = Number(process.env.BENCH_BUDGET_CALLS ?? 2000);
const ROUNDS = Number(process.env.BENCH_BUDGET_ROUNDS ?? 2);

runMain(async () => {
  const env = benchEnv('budget');
  const ds = await migratedDatabase(env);
  try {
    // The exact count: every migration from EnqueueBudget on undone (later ones replace the same
    // function; undoing only the last one, once EnqueuePath and others followed, compared the wrong pair).
    const undoThroughBudget = () => undoMigrationsThrough(ds, 'EnqueueBudget1765400000000');
    const busy = await waitForQuiet();
    const rows: Array<Array<string | number>> = [];
    for (const backlog of [0, 5000]) {
      const [{ id: user }] = await ds.query(`INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id`, [`b${backlog}@example.org`]);
      const total = backlog + 2 * ROUNDS * CALLS;
      const images: number[] = (
        await ds.query(
          `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
           SELECT $1::int, 'a.png', $1::int || '/' || g || '.png', 'image/png', 1, 1, 1 FROM generate_series(1, $2::int) g RETURNING id`,
          [user, total],
        )
      ).map((r: { id: number }) => r.id);
      await ds.query(
        `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
         SELECT gen_random_uuid(), gen_random_uuid()::text, id, $1, 'queued', 1 FROM unnest($2::int[]) id`,
        [user, images.slice(0, backlog)],
      );
      await ds.query('VACUUM ANALYZE queue_jobs');
      let next = backlog;
      const sums = { budget: { ms: 0, cpu: 0, n: 0 }, count: { ms: 0, cpu: 0, n: 0 } };
      const round = async (kind: 'budget' | 'count') => {
        const ids = images.slice(next, next + CALLS);
        next += CALLS;
        const c0 = cpuSecondsByComm('postgres');
        const t0 = performance.now();
        for (const img of ids) {
          await ds.query('SELECT * FROM spheroseg_enqueue($1, $2::int[], $3::int[], $4::int[], $5::uuid[], $6::smallint[], $7)', [user, [], [1], [img], [randomUUID()], [1], 1_000_000]);
        }
        sums[kind].ms += performance.now() - t0;
        sums[kind].cpu += cpuSecondsByComm('postgres') - c0;
        sums[kind].n += ids.length;
        // Back to the backlog, so that every round starts from the same number of open tasks.
        await ds.query('DELETE FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids]);
        if (kind === 'budget') await ds.query('DELETE FROM enqueue_budget WHERE user_id = $1', [user]);
      };
      for (let r = 0; r < ROUNDS; r++) {
        await round('budget');
        await undoThroughBudget();
        await round('count');
        await ds.runMigrations({ transaction: 'each' });
      }
      for (const kind of ['count', 'budget'] as const) {
        const s = sums[kind];
        rows.push([
          `${backlog} → ${backlog + CALLS}`,
          kind === 'budget' ? 'bound (enqueue_budget)' : 'exact count (before)',
          s.n,
          f1((s.ms * 1000) / s.n),
          f1((s.cpu * 1e6) / s.n),
        ]);
      }
    }
    const body = [
      `One caller, \`spheroseg_enqueue\` for one new image per call, MAX_PENDING_TASKS_PER_USER = 10⁶ (the limit never refuses), ${ROUNDS} alternating rounds of ${CALLS} calls per variant and backlog; each round starts from the same backlog (its tasks are deleted after it). PostgreSQL CPU: all postgres processes, from /proc. Machine busy ${f1(busy)} cores before.`,
      '',
      table(['open tasks of the user during a round', 'admission check', 'calls', 'µs per call (wall)', 'PostgreSQL CPU µs per call'], rows),
    ].join('\n');
    console.log(body);
    writeResults('enqueue-budget', 'Enqueue admission check: per-user bound vs exact count', invocation(), body);
  } finally {
    await ds.destroy();
  }
});
