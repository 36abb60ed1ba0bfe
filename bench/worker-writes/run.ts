/**
 * A worker's batch of completions in PostgreSQL: `spheroseg_worker_writes` as migration
 * WorkerWritesSetBased made it (four statements for the batch) against the body it replaced (one
 * `spheroseg_complete_task` call, four statements, per task), in one database: the old body is created
 * beside the new one under another name. Batches are sent as the worker sends them (one named prepared
 * statement, its own transaction and commit) on one connection, alternating the two functions in rounds; a fresh set of
 * open tasks (each image with a current result, as when images are run again) per round. PostgreSQL CPU
 * per task from /proc (every PostgreSQL process: the backend, the WAL writer) and wall time per batch.
 *
 *   npx nest build && node dist/bench/worker-writes/run.js
 */
import { Client } from 'pg';
import { WORKER_WRITES_PER_ROW } from '../../migrations/1765600000000-WorkerWrites';
import { benchEnv, f1, f3, invocation, migratedDatabase, runMain, table, writeResults } from '../common/harness';
import { cpuSecondsByComm, waitForQuiet } from '../common/probe';

const SIZES = (process.env.BENCH_WRITES_SIZES ?? '3,10').split(',').map(Number);
const TASKS = Number(process.env.BENCH_WRITES_TASKS ?? 3000);
const ROUNDS = Number(process.env.BENCH_WRITES_ROUNDS ?? 3);
const FUNCTIONS = { 'per task (replaced)': 'bench_worker_writes_per_row', 'set-based (kept)': 'spheroseg_worker_writes' } as const;
type Variant = keyof typeof FUNCTIONS;
/** What the bench's ML stub answers: one external polygon of 8 points. */
const POLYGONS = JSON.stringify([{ type: 'external', points: Array.from({ length: 8 }, (_, i) => [100 + i, 200 - i]) }]);

runMain(async () => {
  const env = benchEnv('writes');
  const ds = await migratedDatabase(env);
  const c = new Client({ connectionString: env.databaseUrl });
  await c.connect();
  try {
    await ds.query(WORKER_WRITES_PER_ROW.replace('FUNCTION spheroseg_worker_writes(', `FUNCTION ${FUNCTIONS['per task (replaced)']}(`));
    const [{ id: user }] = await ds.query(`INSERT INTO users (email, password_hash) VALUES ('writes@example.org', 'x') RETURNING id`);
    // Images that have a result already (version 1, current), as in the pipeline bench's later drains.
    const images: number[] = (
      await ds.query(
        `WITH i AS (INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
                    SELECT $1::int, 'w.png', 'writes/' || g, 'image/png', 1, 640, 480 FROM generate_series(1, $2::int) g RETURNING id),
              q AS (INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
                    SELECT t, t::text, i.id, $1::int, 'completed', 1 FROM (SELECT gen_random_uuid() AS t, id FROM i) i RETURNING task_id, image_id)
         INSERT INTO segmentation_results (task_id, image_id, version, source, is_current, image_width, image_height,
                                           processing_time_ms, polygon_count, spheroid_count, polygons)
         SELECT task_id, image_id, 1, 'ml', TRUE, 640, 480, 5, 1, 1, $3::json FROM q RETURNING image_id`,
        [user, TASKS, POLYGONS],
      )
    ).map((r: { image_id: number }) => r.image_id);
    await ds.query('ANALYZE');

    const round = async (variant: Variant, size: number) => {
      const tasks: string[] = (
        await ds.query(
          `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority)
           SELECT t, t::text, img, $1::int, 'processing', 1 FROM (SELECT gen_random_uuid() AS t, unnest($2::int[]) AS img) s
           RETURNING task_id`,
          [user, images],
        )
      ).map((r: { task_id: string }) => r.task_id);
      await waitForQuiet();
      const cpu0 = cpuSecondsByComm('postgres');
      const t0 = performance.now();
      let completed = 0;
      for (let i = 0; i < tasks.length; i += size) {
        const ids = tasks.slice(i, i + size);
        // A named prepared statement, as the app's PreparedQueries sends it (parsed and planned once per connection).
        const { rows } = await c.query({
          name: `writes_${FUNCTIONS[variant]}`,
          text: `SELECT w.batch_ord FROM ${FUNCTIONS[variant]}($1::uuid[], $2::varchar[], $3::uuid[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[]) w`,
          values: [[], ['queued', 'processing'], ids, ids.map(() => 640), ids.map(() => 480), ids.map(() => 5), ids.map(() => 1), ids.map(() => POLYGONS)],
        });
        completed += rows.length;
      }
      const ms = performance.now() - t0;
      if (completed !== tasks.length) throw new Error(`${variant}: ${completed} of ${tasks.length} completed`);
      return { cpuUs: ((cpuSecondsByComm('postgres') - cpu0) * 1e6) / tasks.length, batchMs: ms / Math.ceil(tasks.length / size) };
    };

    const rows: Array<Array<string | number>> = [];
    for (const size of SIZES) {
      const runs: Record<Variant, Array<Awaited<ReturnType<typeof round>>>> = { 'per task (replaced)': [], 'set-based (kept)': [] };
      for (let r = 0; r < ROUNDS; r++) {
        const order: Variant[] = r % 2 === 0 ? ['per task (replaced)', 'set-based (kept)'] : ['set-based (kept)', 'per task (replaced)'];
        for (const v of order) {
          const x = await round(v, size);
          runs[v].push(x);
          console.log(`batch of ${size}, ${v}: PostgreSQL ${f1(x.cpuUs)} µs per task, ${f3(x.batchMs)} ms per batch`);
        }
      }
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const [old, kept] = [runs['per task (replaced)'], runs['set-based (kept)']];
      for (const [v, xs] of [['per task (replaced)', old], ['set-based (kept)', kept]] as const)
        rows.push([size, v, xs.map((x) => f1(x.cpuUs)).join(', '), f1(mean(xs.map((x) => x.cpuUs))), f3(mean(xs.map((x) => x.batchMs)))]);
      rows.push([size, 'set-based / per task', '', f3(mean(kept.map((x) => x.cpuUs)) / mean(old.map((x) => x.cpuUs))), f3(mean(kept.map((x) => x.batchMs)) / mean(old.map((x) => x.batchMs)))]);
    }
    writeResults(
      'worker-writes',
      "A worker's completions in PostgreSQL: four statements per batch vs four per task",
      invocation(),
      [
        `One database; ${TASKS} images, each with a current result; per round ${TASKS} open tasks completed in batches (one statement and one commit per batch, a named prepared statement on one connection as the app sends it, the bench's POLYGONS: one external polygon of 8 points), ${ROUNDS} rounds per batch size alternating the two bodies of \`spheroseg_worker_writes\` (the replaced one created beside the kept one under another name). PostgreSQL CPU from /proc, per task: every process of the server (the backend, the WAL writer, and the autovacuum that each round's inserts wake, which both functions pay alike). A component figure; the users' setting is the pipeline bench.`,
        '',
        table(['tasks per batch', 'function', 'PostgreSQL CPU µs per task (rounds)', 'mean', 'ms per batch (mean)'], rows),
      ].join('\n'),
    );
  } finally {
    await c.end();
    await ds.destroy();
    await env.cleanup();
  }
});
