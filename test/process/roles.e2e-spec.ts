import { randomBytes } from 'node:crypto';
import { eventually, makePng, TaskBody, uploadImage, waitForTask } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import {
  BackendProcess,
  metricValue,
  runProcessToExit,
  startProcess,
  startProcesses,
  stopAllProcesses,
} from '../support/processes';

/**
 * Roles as separate processes from the build (CONTRACT §1, §2, §4): what an `api` and a `worker`
 * process do and do not do, work shared between workers, start-up refusal of a bad configuration,
 * and no secret in the logs. Each scenario uses a queue of its own so jobs never leak between them.
 */
const queue = (suffix: string) => `${process.env.QUEUE_NAME}_roles_${suffix}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const taskIdOf = (c: { body: unknown }) => (c.body as { task_id?: string }).task_id;

async function batch(api: BackendProcess, token: string, imageIds: number[]): Promise<TaskBody[]> {
  const res = await api.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds } });
  if (res.status !== 202) throw new Error(`batch: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { tasks: TaskBody[] }).tasks;
}

describe('process roles (real processes from the build)', () => {
  const stubs: MlStub[] = [];
  const newStub = async () => {
    const s = new MlStub({ imageWidth: 64, imageHeight: 48 });
    await s.start();
    stubs.push(s);
    return s;
  };
  let png: Buffer;

  beforeAll(async () => {
    png = await makePng();
  });
  afterAll(async () => {
    await stopAllProcesses();
    await Promise.all(stubs.map((s) => s.stop()));
  });

  it('an api process never calls the ML service and stays ready (degraded) while the ML service is down', async () => {
    const stub = await newStub();
    const env = {
      QUEUE_NAME: queue('api'),
      ML_SERVICE_URL: stub.url,
      ML_BREAKER_VOLUME_THRESHOLD: '2',
      QUEUE_BACKOFF_DELAY: '100',
      SHUTDOWN_TIMEOUT: '6000', // the worker's jobs wait for the circuit: hand them back soon on stop
    };
    const api = await startProcess({ role: 'api', env });
    const { token } = await api.register();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await uploadImage(api, token, png));
    const tasks = await batch(api, token, ids);
    expect(tasks).toHaveLength(3);

    // Nothing consumes: the api process neither segments nor probes the ML service.
    await sleep(3000);
    expect(stub.calls).toHaveLength(0);
    expect(stub.healthCalls).toBe(0);
    for (const t of tasks) {
      const body = (await (
        await api.request(`/api/segmentation/tasks/${t.taskId}`, { token })
      ).json()) as TaskBody;
      expect(body.status).toBe('queued');
    }

    // ML down while a worker reports it: the api stays ready, the system is degraded, not unhealthy.
    await stub.stop();
    const worker = await startProcess({ role: 'worker', env });
    const health = await eventually(
      async () => {
        const res = await api.request('/api/health');
        const body = await res.json();
        return res.status === 200 && body.services.ml === 'unhealthy' ? body : null;
      },
      20_000,
      200,
    );
    expect(health).toMatchObject({
      status: 'degraded',
      services: { database: 'healthy', redis: 'healthy', ml: 'unhealthy' },
    });
    const ready = await api.request('/api/health/ready');
    expect(ready.status).toBe(200);
    expect((await ready.json()).status).toBe('ok');
    expect((await api.request('/api/health/live')).status).toBe(200);
    await worker.stop();
    await api.stop();
  });

  it('a worker process serves only /api/health/* and /api/metrics', async () => {
    const stub = await newStub();
    const worker = await startProcess({
      role: 'worker',
      env: { QUEUE_NAME: queue('w'), ML_SERVICE_URL: stub.url },
    });
    expect((await worker.request('/api/health/live')).status).toBe(200);
    expect((await worker.request('/api/health/ready')).status).toBe(200);
    const health = await worker.request('/api/health');
    expect(health.status).toBe(200);
    expect((await health.json()).services).toMatchObject({ database: 'healthy', redis: 'healthy' });
    expect((await worker.request('/api/health/services/database')).status).toBe(200);
    const metrics = await worker.request('/api/metrics');
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('segmentation_jobs_total');

    expect((await worker.request('/api/images')).status).toBe(404);
    const form = new FormData();
    form.append('file', new Blob([png]), 'a.png');
    expect((await worker.request('/api/images', { method: 'POST', body: form })).status).toBe(404);
    expect(
      (
        await worker.request('/api/auth/login', {
          method: 'POST',
          json: { email: 'a@example.org', password: 'password-123' },
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await worker.request('/api/auth/register', {
          method: 'POST',
          json: { email: 'a@example.org', password: 'password-123' },
        })
      ).status,
    ).toBe(404);
    expect((await worker.request('/api/segmentation/tasks')).status).toBe(404);
    await worker.stop();
  });

  it('two workers share the work and each task is processed once', async () => {
    const stub = await newStub();
    stub.behave({ latencyMs: 100 });
    const env = { QUEUE_NAME: queue('share'), ML_SERVICE_URL: stub.url, QUEUE_CONCURRENCY: '2' };
    const [api, w1, w2] = await startProcesses([
      { role: 'api', env },
      { role: 'worker', env },
      { role: 'worker', env },
    ]);
    const { token } = await api.register();
    const ids: number[] = [];
    for (let i = 0; i < 20; i++) ids.push(await uploadImage(api, token, png));
    const tasks = await batch(api, token, ids);
    expect(tasks).toHaveLength(20);

    const done = await Promise.all(tasks.map((t) => waitForTask(api, token, t.taskId, undefined, 40_000)));
    expect(done.map((d) => d.status)).toEqual(Array(20).fill('completed'));

    const seen = new Map<string, number>();
    for (const c of stub.calls) seen.set(taskIdOf(c) ?? '?', (seen.get(taskIdOf(c) ?? '?') ?? 0) + 1);
    expect([...seen.keys()].sort()).toEqual(tasks.map((t) => t.taskId).sort());
    expect([...seen.values()].every((n) => n === 1)).toBe(true);

    const completed = async (w: BackendProcess) =>
      metricValue(await (await w.request('/api/metrics')).text(), 'segmentation_jobs_total', {
        result: 'completed',
      });
    const c1 = await completed(w1);
    const c2 = await completed(w2);
    expect(c1).toBeGreaterThan(0);
    expect(c2).toBeGreaterThan(0);
    expect(c1 + c2).toBe(20);
    // The api process consumed nothing.
    expect(await completed(api)).toBe(0);
  });

  it.each([
    ['DATABASE_POOL_MAX', { DATABASE_POOL_MAX: 'abc' }],
    ['APP_ROLE', { APP_ROLE: 'bogus' }],
  ])('refuses to start on an invalid %s: exit non-zero, one line naming it, no stack', async (name, env) => {
    const r = await runProcessToExit({ role: 'api', env: { QUEUE_NAME: queue('cfg'), ...env } });
    expect(r.signal).toBeNull();
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(r.logs).not.toMatch(/^\s+at /m);
    expect(r.stdout.trim()).toBe('');
  });

  it('never writes the JWT secret or the database password to its logs', async () => {
    const stub = await newStub();
    const password = `pw${randomBytes(12).toString('hex')}`;
    const secret = `jwt${randomBytes(16).toString('hex')}`;
    const dbUrl = new URL(process.env.DATABASE_URL!);
    dbUrl.username = dbUrl.username || 'postgres';
    dbUrl.password = password; // trust auth ignores it; the process must still keep it to itself
    const p = await startProcess({
      role: 'all',
      env: {
        QUEUE_NAME: queue('secrets'),
        ML_SERVICE_URL: stub.url,
        DATABASE_URL: dbUrl.toString(),
        JWT_SECRET: secret,
        LOG_LEVEL: 'debug',
      },
    });
    const { token } = await p.register();
    expect((await p.request('/api/auth/me', { token })).status).toBe(200);
    expect(
      (
        await p.request('/api/auth/login', {
          method: 'POST',
          json: { email: 'nobody@example.org', password: 'wrong-password' },
        })
      ).status,
    ).toBe(401);
    expect((await p.request('/api/auth/me', { token: 'not.a.jwt' })).status).toBe(401);
    expect((await p.request('/api/images/999999', { token })).status).toBe(404);
    const bad = await p.request('/api/auth/login', {
      method: 'POST',
      body: '{"email":',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    const imageId = await uploadImage(p, token, png);
    const task = (await (
      await p.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json: {} })
    ).json()) as TaskBody;
    await waitForTask(p, token, task.taskId);
    const detailed = await p.request('/api/health/detailed');
    const detailedText = await detailed.text();
    const exit = await p.stop();
    expect(exit.code).toBe(0);

    const logs = p.logs();
    expect(logs).toContain('/api/auth/login'); // the requests were logged, so the check below means something
    expect(logs).not.toContain(password);
    expect(logs).not.toContain(secret);
    expect(detailedText).not.toContain(password);
    expect(detailedText).not.toContain(secret);
  });
});
