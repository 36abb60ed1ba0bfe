import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { MlStub } from '../support/ml-stub';
import { uploadImage } from '../support/fixtures';
import { type BackendProcess, startProcesses, stopAllProcesses } from '../support/processes';
import { REPO_ROOT, sleep } from './npm-run';
import { loadManifests } from './manifests';
import { PROMETHEUS_BIN, Prometheus, dashboardQueries, kedaQueries } from './prometheus';

/**
 * A real Prometheus (Debian's) scrapes an api and a worker process. Every query of the Grafana
 * dashboard and of the KEDA trigger is evaluated through its HTTP API: the queue-depth ones must read
 * the real depth (`/api/queue/metrics`), not one copy per scraped process, and every other one must
 * return data without error. Then every metric name the docs and deploy/ mention must exist.
 */
const STATES = ['waiting', 'active', 'completed', 'failed', 'delayed', 'paused'] as const;
const ADMIN = { email: 'ops@lab.test', password: 'ops-password-1' };

let stub: MlStub;
let api: BackendProcess;
let worker: BackendProcess;
let prom: Prometheus;
let adminToken: string;

beforeAll(async () => {
  if (!existsSync(PROMETHEUS_BIN))
    throw new Error(`${PROMETHEUS_BIN} missing: apt-get install -y prometheus`);
  stub = new MlStub();
  await stub.start();
  // A queue of its own: the counts below are exact, and the run's shared queue may hold a job another
  // suite left waiting (its worker stopped first), which this worker would take and complete.
  const queue = `${process.env.QUEUE_NAME}_prom_${randomBytes(4).toString('hex')}`;
  const shared = { ML_SERVICE_URL: stub.url, SHUTDOWN_TIMEOUT: '8000', QUEUE_CONCURRENCY: '2', QUEUE_NAME: queue };
  [api, worker] = await startProcesses([
    { role: 'api', env: { ...shared, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password } },
    { role: 'worker', env: shared },
  ]);
  // Prometheus first, the work after: rates need samples from before and after it.
  prom = await Prometheus.start([
    { url: api.url, role: 'api', pod: 'spheroseg-api-0' },
    { url: worker.url, role: 'worker', pod: 'spheroseg-worker-0' },
  ]);
  await until(async () => (await prom.query('up == 1')).length === 2, 20_000, 'both targets up');

  const login = await api.request('/api/auth/login', { method: 'POST', json: ADMIN });
  adminToken = (await login.json()).accessToken;
  const { token } = await api.register();
  const images: number[] = [];
  for (let i = 0; i < 9; i++) images.push(await uploadImage(api, token));
  const enqueue = async (id: number) => {
    const res = await api.request(`/api/images/${id}/segmentation`, { method: 'POST', token, json: {} });
    if (res.status !== 202) throw new Error(`enqueue: ${res.status} ${await res.text()}`);
  };
  // Some jobs complete, spread over several scrapes...
  for (const id of images.slice(0, 3)) {
    await enqueue(id);
    await until(
      async () => (await queueMetrics()).completed >= images.indexOf(id) + 1,
      20_000,
      'a completed job',
    );
    await sleep(1100);
  }
  // ...then the ML service stops answering: the worker holds what it took, the rest waits.
  stub.behave({ hang: true });
  for (const id of images.slice(3)) await enqueue(id);
  await until(async () => (await queueMetrics()).active > 0, 20_000, 'active jobs');
  await until(
    async () => {
      const a = await queueMetrics();
      await sleep(1500);
      return JSON.stringify(a) === JSON.stringify(await queueMetrics());
    },
    20_000,
    'a stable queue',
  );
  // A few scrapes of the settled state.
  await sleep(3000);
}, 180_000);

afterAll(async () => {
  await prom?.stop();
  await stub?.stop();
  await stopAllProcesses();
});

async function queueMetrics(): Promise<Record<(typeof STATES)[number], number>> {
  const res = await api.request('/api/queue/metrics', { token: adminToken });
  if (res.status !== 200) throw new Error(`queue metrics: ${res.status}`);
  return res.json();
}

async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const isQueueDepth = (expr: string) => expr.includes('segmentation_queue_jobs');

describe('dashboard and KEDA queries against a real Prometheus scraping an api and a worker', () => {
  it('has a settled queue with waiting, active and completed jobs, exported by both processes', async () => {
    const m = await queueMetrics();
    expect(m.waiting).toBeGreaterThan(0);
    expect(m.active).toBeGreaterThan(0);
    expect(m.completed).toBe(3);
    // Both processes export the same global figures: adding them up doubles the depth.
    const perPod = await prom.query('segmentation_queue_jobs{state="waiting"}');
    expect(perPod.map((s) => s.metric.role).sort()).toEqual(['api', 'worker']);
    expect(perPod.map((s) => Number(s.value[1]))).toEqual([m.waiting, m.waiting]);
  });

  it('the queue-depth panel reads the real count of every state (equal to /api/queue/metrics)', async () => {
    const exprs = dashboardQueries().filter((q) => isQueueDepth(q.expr));
    expect(exprs.length).toBeGreaterThan(0);
    const m = await queueMetrics();
    for (const { expr } of exprs) {
      const byState = Object.fromEntries(
        (await prom.query(expr)).map((s) => [s.metric.state, Number(s.value[1])]),
      );
      expect({ expr, byState }).toEqual({ expr, byState: Object.fromEntries(STATES.map((s) => [s, m[s]])) });
    }
  });

  it('the KEDA trigger reads the real number of waiting jobs', async () => {
    const queries = kedaQueries(loadManifests().map((m) => m.doc));
    expect(queries.length).toBeGreaterThan(0);
    const { waiting } = await queueMetrics();
    for (const expr of queries) {
      const result = await prom.query(expr);
      expect({ expr, values: result.map((s) => Number(s.value[1])) }).toEqual({ expr, values: [waiting] });
    }
  });

  it.each(dashboardQueries().filter((q) => !isQueueDepth(q.expr)))(
    'panel "$panel" returns data: $expr',
    async ({ expr }) => {
      const result = await prom.query(expr);
      expect(result.length).toBeGreaterThan(0);
      // Some series may be NaN (a histogram_quantile over a route seen once), never all of them.
      expect(result.some((s) => Number.isFinite(Number(s.value[1])))).toBe(true);
    },
  );
});

/**
 * Metric-like names: `segmentation_…`, `ml_…`, `db_…`, `http_…`, `process_…`, `nodejs_…`, the
 * namespaces of the backend's registry, minus the names of its database tables.
 */
const METRIC_NAME = /\b(?:segmentation|ml|db|http|process|nodejs)_[a-z0-9_]*[a-z0-9]\b/g;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1] + s);
    if (m[2] === 'summary') for (const s of ['_sum', '_count']) names.add(m[1] + s);
  }
  return names;
}

describe('metric names in the docs and deploy/', () => {
  it('every one exists in the /api/metrics of an api and of a worker process', async () => {
    const db = new Client({ connectionString: process.env.DATABASE_URL });
    await db.connect();
    const tables = new Set(
      (
        await db.query<{ n: string }>(
          `SELECT table_name AS n FROM information_schema.tables WHERE table_schema = 'public'`,
        )
      ).rows.map((r) => r.n),
    );
    await db.end();
    expect(tables.has('queue_jobs')).toBe(true);

    const sources = [
      ...readdirSync(path.join(REPO_ROOT, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => path.join(REPO_ROOT, 'docs', f)),
      path.join(REPO_ROOT, 'README.md'),
      ...filesUnder(path.join(REPO_ROOT, 'deploy')),
    ];
    const mentioned = new Map<string, string>();
    for (const file of sources) {
      for (const m of readFileSync(file, 'utf8').matchAll(METRIC_NAME)) {
        if (!tables.has(m[0]) && !mentioned.has(m[0])) mentioned.set(m[0], path.relative(REPO_ROOT, file));
      }
    }
    expect(mentioned.has('segmentation_queue_jobs')).toBe(true);

    for (const p of [api, worker]) {
      const exported = exportedNames(await (await p.request('/api/metrics')).text());
      const missing = [...mentioned]
        .filter(([name]) => !exported.has(name))
        .map(([name, file]) => `${name} (${file})`);
      expect({ role: p.role, missing }).toEqual({ role: p.role, missing: [] });
    }
  });
});
