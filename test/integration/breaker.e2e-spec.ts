import { startTestApp, TestApp } from '../support/app';
import { MlStub } from '../support/ml-stub';
import { eventually, uploadImage, waitForTask, TaskBody } from '../support/fixtures';

describe('ML down: the circuit opens, tasks wait with their attempts, then complete', () => {
  const stub = new MlStub();
  let t: TestApp;

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({
      QUEUE_NAME: `${process.env.QUEUE_NAME}_breaker`,
      ML_SERVICE_URL: stub.url,
      QUEUE_CONCURRENCY: '2',
      QUEUE_BACKOFF_DELAY: '50',
      QUEUE_MAX_ATTEMPTS: '3',
      ML_BREAKER_VOLUME_THRESHOLD: '2',
      ML_BREAKER_ERROR_THRESHOLD: '50',
      ML_BREAKER_RESET_TIMEOUT: '1500',
    });
  });
  afterAll(async () => {
    await t.close();
    await stub.stop();
  });

  it('keeps tasks queued without using attempts while open, and completes them once the ML service is back', async () => {
    await stub.stop(); // refused connections
    const { token } = await t.register();
    const ids = await Promise.all([1, 2, 3, 4].map(() => uploadImage(t, token)));
    const tasks: TaskBody[] = [];
    for (const id of ids) tasks.push(await (await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token })).json());

    const ml = await eventually(async () => {
      const body = await (await t.request('/api/health/services/ml')).json();
      return body.details?.circuit === 'open' ? body : null;
    });
    expect(ml.status).toBe('unhealthy');
    const health = await t.request('/api/health');
    expect(health.status).toBe(200);
    expect((await health.json()).status).toBe('degraded');
    expect((await t.request('/api/health/ready')).status).toBe(200);
    const metrics = await (await t.request('/api/metrics')).text();
    expect(metrics).toMatch(/^ml_circuit_state 2$/m);

    // While open, nothing fails and no attempt beyond those that reached (were refused by) the service.
    await new Promise((r) => setTimeout(r, 1000));
    for (const task of tasks) {
      const now = await waitForTask(t, token, task.taskId, () => true);
      expect(['queued', 'processing']).toContain(now.status);
      expect(now.attempts).toBeLessThan(3);
    }
    // A new request is still accepted while ML is down.
    const late = await (await t.request(`/api/images/${await uploadImage(t, token)}/segmentation`, { method: 'POST', token })).json();
    expect(late.status).toBe('queued');

    await stub.restart();
    const done = await Promise.all([...tasks, late].map((x) => waitForTask(t, token, x.taskId)));
    for (const d of done) expect(d.status).toBe('completed');
    await eventually(async () => ((await (await t.request('/api/health/services/ml')).json()).details?.circuit === 'closed' ? true : null));
  });
});

describe('ENABLE_QUEUE=false: segmentation in the request', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let t: TestApp;

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({
      QUEUE_NAME: `${process.env.QUEUE_NAME}_sync`,
      ENABLE_QUEUE: 'false',
      ML_SERVICE_URL: stub.url,
      ML_BREAKER_VOLUME_THRESHOLD: '1',
      ML_BREAKER_RESET_TIMEOUT: '60000',
    });
  });
  afterAll(async () => {
    await t.close();
    await stub.stop();
  });

  it('answers 200 with a completed task and stores the result', async () => {
    const { token } = await t.register();
    const imageId = await uploadImage(t, token);
    const res = await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ imageId, status: 'completed', attempts: 1, progress: 100 });
    expect((await t.request(`/api/images/${imageId}/segmentation`, { token })).status).toBe(200);
  });

  it('answers 422 when the ML service rejects the image', async () => {
    stub.enqueue({ status: 400, body: { success: false, error: 'not an image' } });
    const { token } = await t.register();
    const res = await t.request(`/api/images/${await uploadImage(t, token)}/segmentation`, { method: 'POST', token });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ statusCode: 422 });
  });

  it('answers 502 on ML failures, then 503 with Retry-After once the circuit is open', async () => {
    stub.behave({ status: 500 });
    const { token } = await t.register();
    const statuses: number[] = [];
    let open: Awaited<ReturnType<TestApp['request']>> | undefined;
    for (let i = 0; i < 10 && !open; i++) {
      const callsBefore = stub.calls.length;
      const res = await t.request(`/api/images/${await uploadImage(t, token)}/segmentation`, { method: 'POST', token });
      statuses.push(res.status);
      if (res.status === 503) {
        open = res;
        expect(stub.calls.length).toBe(callsBefore); // refused by the breaker, the ML service was not called
      }
    }
    expect(statuses[0]).toBe(502);
    expect(statuses.slice(0, -1).every((s) => s === 502)).toBe(true);
    expect(open).toBeDefined();
    expect(Number(open!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await open!.json()).toMatchObject({ statusCode: 503, error: 'Service Unavailable' });
  });
});

describe('a task cancelled while its worker waits for the open circuit gets no ML call', () => {
  const stub = new MlStub();
  let t: TestApp;

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({
      QUEUE_NAME: `${process.env.QUEUE_NAME}_breaker_cancel`,
      ML_SERVICE_URL: stub.url,
      QUEUE_CONCURRENCY: '3',
      QUEUE_BACKOFF_DELAY: '50',
      QUEUE_MAX_ATTEMPTS: '5',
      ML_BREAKER_VOLUME_THRESHOLD: '1',
      ML_BREAKER_ERROR_THRESHOLD: '50',
      ML_BREAKER_RESET_TIMEOUT: '1500',
    });
  });
  afterAll(async () => {
    await t.close();
    await stub.stop();
  });

  const circuit = async () => ((await (await t.request('/api/health/services/ml')).json()) as { details?: { circuit?: string } }).details?.circuit;
  const enqueue = async (token: string) =>
    ((await (await t.request(`/api/images/${await uploadImage(t, token)}/segmentation`, { method: 'POST', token })).json()) as TaskBody).taskId;

  it('drops the cancelled task before its call, and a live waiting task is the half-open trial', async () => {
    const { token } = await t.register();
    // Open the circuit with one failed call, then take that task out of the way.
    stub.behave({ status: 500 });
    const first = await enqueue(token);
    await eventually(async () => ((await circuit()) === 'open' ? true : null));
    await waitForTask(t, token, first, (x) => x.status === 'queued' && x.attempts === 1);
    expect((await t.request(`/api/segmentation/tasks/${first}`, { method: 'DELETE', token })).status).toBe(200);

    // Three tasks wait in the queue; at half-open the worker takes all three: the first call is the
    // trial (held, then 500 → open again), the two others are refused and wait in the worker.
    stub.reset();
    stub.enqueue({ latencyMs: 800, status: 500 });
    const tasks = [await enqueue(token), await enqueue(token), await enqueue(token)];
    await stub.waitForCalls(1, 10_000);
    const trial = (stub.calls[0].body as { task_id: string }).task_id;
    await eventually(async () => ((await circuit()) === 'open' ? true : null));
    const waiting = tasks.filter((id) => id !== trial);
    for (const id of waiting) await waitForTask(t, token, id, (x) => x.status === 'processing');

    // Cancel one of the waiting tasks while the circuit is open.
    const [cancelled, live] = waiting;
    expect((await t.request(`/api/segmentation/tasks/${cancelled}`, { method: 'DELETE', token })).status).toBe(200);
    const callsAtCancel = stub.calls.length;

    // Next half-open: the live task's call is the trial and closes the circuit; everything completes.
    for (const id of [live, trial]) expect((await waitForTask(t, token, id)).status).toBe('completed');
    await eventually(async () => ((await circuit()) === 'closed' ? true : null));
    const later = stub.calls.slice(callsAtCancel).map((c) => (c.body as { task_id: string }).task_id);
    expect(later).toContain(live);
    expect(later).not.toContain(cancelled);
    expect((await waitForTask(t, token, cancelled, () => true)).status).toBe('cancelled');
  });
});
