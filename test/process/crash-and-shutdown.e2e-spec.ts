import Redis from 'ioredis';
import { Client } from 'pg';
import { bandQueueName } from '../../src/queue/queue.constants';
import { eventually, makePng, TaskBody, uploadImage, waitForTask } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import { BackendProcess, startProcess, stopAllProcesses } from '../support/processes';

/**
 * Crashes and signals on real processes (CONTRACT §1): a worker killed mid-job loses nothing, a
 * SIGTERM mid-job finishes or hands back the job and exits 0, and an api process drains its requests.
 * Scenarios run one after the other on one queue and one api process; each ends with no open task.
 */
const QUEUE = `${process.env.QUEUE_NAME}_crash`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('crashes and shutdown (real processes from the build)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let api: BackendProcess;
  let token: string;
  let db: Client;
  let png: Buffer;
  const env = (extra: Record<string, string> = {}) => ({
    QUEUE_NAME: QUEUE,
    ML_SERVICE_URL: stub.url,
    QUEUE_BACKOFF_DELAY: '200',
    ML_BREAKER_VOLUME_THRESHOLD: '1000', // these scenarios are about processes, not the breaker
    ...extra,
  });

  beforeAll(async () => {
    png = await makePng();
    await stub.start();
    api = await startProcess({ role: 'api', env: env() });
    token = (await api.register()).token;
    db = new Client({ connectionString: process.env.DATABASE_URL });
    await db.connect();
  });
  afterAll(async () => {
    await stopAllProcesses();
    await stub.stop();
    await db?.end();
  });
  beforeEach(() => stub.reset());
  // Processes a scenario starts must not take the next scenario's jobs.
  const scenario: BackendProcess[] = [];
  afterEach(async () => {
    await Promise.all(scenario.splice(0).map((p) => p.stop()));
  });
  const start = async (role: 'api' | 'worker', extra: Record<string, string> = {}, name?: string) => {
    const p = await startProcess({ role, name, env: env(extra) });
    scenario.push(p);
    return p;
  };

  const enqueue = async (): Promise<TaskBody> => {
    const imageId = await uploadImage(api, token, png);
    const res = await api.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json: {} });
    expect(res.status).toBe(202);
    return (await res.json()) as TaskBody;
  };
  const getTask = async (taskId: string): Promise<TaskBody> =>
    (await (await api.request(`/api/segmentation/tasks/${taskId}`, { token })).json()) as TaskBody;
  const callsFor = (taskId: string) =>
    stub.calls.filter((c) => (c.body as { task_id?: string }).task_id === taskId).length;

  it('a worker killed with SIGKILL mid-job: another worker completes the task, with exactly one result', async () => {
    const fast = { QUEUE_LOCK_DURATION: '2000', QUEUE_STALLED_INTERVAL: '1000' };
    stub.enqueue({ latencyMs: 4000 }); // the first call is still running when its worker dies
    const a = await start('worker', fast, 'worker-A');
    const task = await enqueue();
    await stub.waitForCalls(1, 15_000);
    expect(a.kill('SIGKILL')).toBe(true);
    expect(await a.waitExit(5000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect((await getTask(task.taskId)).status).toBe('processing'); // what the dead worker left behind

    await start('worker', fast, 'worker-B');
    const done = await waitForTask(api, token, task.taskId, undefined, 30_000);
    expect(done.status).toBe('completed');
    await sleep(4500); // past the first call's latency: a late answer must not add anything
    const rows = await db.query<{ task_id: string; is_current: boolean }>(
      'SELECT task_id, is_current FROM segmentation_results WHERE image_id = $1',
      [task.imageId],
    );
    expect(rows.rows).toEqual([{ task_id: task.taskId, is_current: true }]);
    const job = await db.query('SELECT status FROM queue_jobs WHERE task_id = $1', [task.taskId]);
    expect(job.rows).toEqual([{ status: 'completed' }]);
    expect(callsFor(task.taskId)).toBe(2);
  });

  it('SIGTERM during a 1 s ML call: the job finishes, the process exits 0', async () => {
    stub.enqueue({ latencyMs: 1000 });
    const w = await start('worker', { SHUTDOWN_TIMEOUT: '8000' });
    const task = await enqueue();
    await stub.waitForCalls(1, 15_000);
    w.kill('SIGTERM');
    expect(await w.waitExit(12_000)).toEqual({ code: 0, signal: null });
    const after = await getTask(task.taskId);
    expect(after).toMatchObject({ status: 'completed', progress: 100 });
    const rows = await db.query('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = $1', [
      task.taskId,
    ]);
    expect(rows.rows[0].n).toBe(1);
    expect(callsFor(task.taskId)).toBe(1);
  });

  it('SIGTERM during a hanging ML call: exit 0 within SHUTDOWN_TIMEOUT, the task is queued again and another worker completes it', async () => {
    stub.enqueue({ hang: true });
    const w = await start('worker', { SHUTDOWN_TIMEOUT: '8000' });
    const task = await enqueue();
    await stub.waitForCalls(1, 15_000);
    expect((await getTask(task.taskId)).status).toBe('processing');
    w.kill('SIGTERM');
    // A process still alive at SHUTDOWN_TIMEOUT exits 1 by its own deadline; the extra 3 s is for that.
    expect(await w.waitExit(11_000)).toEqual({ code: 0, signal: null });
    expect(w.logs()).not.toContain('shutdown timed out');
    await stub.waitForPendingRequests(0, 5000); // the hung call was aborted, not left open
    const handedBack = await getTask(task.taskId);
    expect(handedBack.status).toBe('queued');
    const row = await db.query('SELECT status FROM queue_jobs WHERE task_id = $1', [task.taskId]);
    expect(row.rows).toEqual([{ status: 'queued' }]);

    // The default lock duration (30 s) is kept on purpose: the job must be back in the queue, not
    // recovered later as a stalled job.
    await start('worker', { SHUTDOWN_TIMEOUT: '8000' });
    const done = await waitForTask(api, token, task.taskId, undefined, 20_000);
    expect(done.status).toBe('completed');
    expect(callsFor(task.taskId)).toBe(2);
  });

  it('SIGTERM with a job fetched ahead (slot busy on a hanging call): it goes back to the queue at once, and each task completes once elsewhere', async () => {
    stub.enqueue({ hang: true }); // task 1's call hangs; the later ones answer at once
    const tasks = [await enqueue(), await enqueue(), await enqueue()]; // all waiting when the worker starts
    const w = await start('worker', { SHUTDOWN_TIMEOUT: '8000', QUEUE_CONCURRENCY: '1' });
    await stub.waitForCalls(1, 15_000);
    // The only slot is busy, so its next job was fetched ahead: two jobs active in Bull (tasks of a
    // normal user are in band p1), the second not started (still queued in PostgreSQL, no ML call).
    const redis = new Redis(process.env.REDIS_URL!);
    try {
      await eventually(async () => (await redis.llen(`{${QUEUE}}:${bandQueueName(1)}:active`)) === 2, 10_000);
    } finally {
      redis.disconnect();
    }
    expect(callsFor(tasks[1].taskId)).toBe(0);
    expect((await getTask(tasks[1].taskId)).status).toBe('queued');

    w.kill('SIGTERM');
    expect(await w.waitExit(11_000)).toEqual({ code: 0, signal: null });
    const after = await db.query<{ status: string }>('SELECT status FROM queue_jobs WHERE task_id = ANY($1::uuid[]) ORDER BY created_at', [
      tasks.map((t) => t.taskId),
    ]);
    expect(after.rows.map((r) => r.status)).toEqual(['queued', 'queued', 'queued']);

    await start('worker', { SHUTDOWN_TIMEOUT: '8000' });
    for (const t of tasks) expect((await waitForTask(api, token, t.taskId, undefined, 20_000)).status).toBe('completed');
    expect(tasks.map((t) => callsFor(t.taskId))).toEqual([2, 1, 1]); // task 1: the aborted call and the real one
    const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM segmentation_results WHERE task_id = ANY($1::uuid[])', [
      tasks.map((t) => t.taskId),
    ]);
    expect(rows.rows[0].n).toBe(3);
  });
});
