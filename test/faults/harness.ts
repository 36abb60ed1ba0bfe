import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { makePng } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import { PgInstance, startPostgres } from '../support/pg-instance';
import { BackendProcess, ProcessRole, startProcess, stopAllProcesses } from '../support/processes';
import { RedisInstance, startRedis } from '../support/redis-instance';

/**
 * Shared set-up of the fault suites: a PostgreSQL and a Redis of their own (never the shared 5432/6379),
 * an ML stub, and backend processes from the build pointed at them. One {@link FaultStack} per test
 * file; each case gets a database of its own ({@link FaultStack.newDatabase}), which the app creates.
 */
export { sleep, until, statusOf, summarize, waitAllCompleted, type TaskSummary } from '../support/checks';

export const ADMIN = { email: 'fault-admin@example.org', password: 'admin-password-1' };

export interface FaultStack {
  pg: PgInstance;
  redis: RedisInstance;
  stub: MlStub;
  /** A fresh database name on `pg` (the app creates it at start). */
  newDatabase(): string;
  /** Environment of a backend process against this stack and database `db`. */
  env(db: string, extra?: Record<string, string>): Record<string, string>;
  start(
    role: ProcessRole,
    db: string,
    extra?: Record<string, string>,
    name?: string,
  ): Promise<BackendProcess>;
  /** A pg client on database `db` of this stack (ended by {@link teardown}). */
  sql(db: string): Promise<Client>;
  teardown(): Promise<void>;
}

export async function startStack(): Promise<FaultStack> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  await stub.start();
  const clients: Client[] = [];
  let n = 0;
  const stack: FaultStack = {
    pg,
    redis,
    stub,
    newDatabase: () => `faults_${++n}_${randomBytes(3).toString('hex')}`,
    env: (db, extra = {}) => ({
      DATABASE_URL: pg.urlFor(db),
      REDIS_URL: redis.url,
      QUEUE_NAME: `faults_${db}`,
      ML_SERVICE_URL: stub.url,
      RECONCILE_INTERVAL_MS: '1000',
      RECONCILE_GRACE_MS: '2000',
      QUEUE_BACKOFF_DELAY: '200',
      RATE_LIMIT_PER_MINUTE: '1000000',
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      LOG_LEVEL: 'warn',
      ...extra,
    }),
    start: (role, db, extra = {}, name) =>
      startProcess({ role, name, env: stack.env(db, extra), liveTimeoutMs: 45_000 }),
    sql: async (db) => {
      const c = new Client({ connectionString: pg.urlFor(db), connectionTimeoutMillis: 3000 });
      c.on('error', () => undefined); // a restart of PostgreSQL ends it; callers reconnect
      await c.connect();
      clients.push(c);
      return c;
    },
    teardown: async () => {
      await stopAllProcesses(10_000).catch(() => undefined);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await stub.stop();
      await Promise.allSettled([pg.destroy(), redis.destroy()]);
    },
  };
  return stack;
}

let png: Buffer | undefined;

/** Uploads `n` images through `api` (4 at a time); returns their ids. */
export async function uploadMany(api: BackendProcess, token: string, n: number): Promise<number[]> {
  png ??= await makePng();
  const ids: number[] = new Array(n);
  let next = 0;
  const one = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const form = new FormData();
      form.append('file', new Blob([png!]), `s${i}.png`);
      const res = await api.request('/api/images', { method: 'POST', body: form, token, timeoutMs: 10_000 });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
      ids[i] = ((await res.json()) as { id: number }).id;
    }
  };
  await Promise.all(Array.from({ length: 4 }, one));
  return ids;
}

/** Batch enqueue; returns the task ids (202 expected). */
export async function enqueueBatch(
  api: BackendProcess,
  token: string,
  imageIds: number[],
): Promise<string[]> {
  const res = await api.request('/api/segmentation/batch', {
    method: 'POST',
    token,
    json: { imageIds },
    timeoutMs: 15_000,
  });
  if (res.status !== 202) throw new Error(`batch enqueue: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { tasks: { taskId: string }[] }).tasks.map((t) => t.taskId);
}

export async function adminToken(api: BackendProcess): Promise<string> {
  const res = await api.request('/api/auth/login', { method: 'POST', json: ADMIN });
  if (res.status !== 200) throw new Error(`admin login: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { accessToken: string }).accessToken;
}

/** With FAULTS_REPORT=1, prints one line of observed figures per case to stderr (nothing otherwise). */
export function report(what: string, figures: Record<string, unknown>): void {
  if (process.env.FAULTS_REPORT === '1')
    process.stderr.write(`[faults] ${what}: ${JSON.stringify(figures)}\n`);
}
