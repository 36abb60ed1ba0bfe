import type { CircuitState, MlSegmentRequest } from '../../../src/common/contracts';
import { MetricsService } from '../../../src/metrics/metrics.service';
import {
  MlAbortedError,
  MlBadInputError,
  MlCircuitOpenError,
  MlServiceError,
  MlTimeoutError,
} from '../../../src/ml/ml.errors';
import { MlService } from '../../../src/ml/ml.service';
import { MlStub } from '../../support/ml-stub';
import { buildMlModule, metricValue, mlDurationCount, mlRequests } from './ml-test-module';

const QUEUE_NAME = `test_ml_svc_${Date.now()}_${process.pid}`;
const req = (n = 1): MlSegmentRequest => ({ image_path: `u1/img-${n}.png`, task_id: `task-${n}` });

describe('MlService (real HTTP against ml-stub)', () => {
  const stub = new MlStub({ imageWidth: 320, imageHeight: 200 });
  let ctx: Awaited<ReturnType<typeof buildMlModule>> | undefined;
  let ml: MlService;
  let metrics: MetricsService;
  let states: CircuitState[];

  beforeAll(async () => {
    await stub.start();
  });
  afterAll(async () => {
    await stub.stop();
  });

  /** Fresh module per test, so breaker, stats and metrics start from zero. */
  async function setup(env: Record<string, string> = {}): Promise<void> {
    ctx = await buildMlModule({
      APP_ROLE: 'worker',
      QUEUE_NAME,
      ML_SERVICE_URL: stub.url,
      ML_SERVICE_TIMEOUT: '5000',
      ML_BREAKER_ERROR_THRESHOLD: '50',
      ML_BREAKER_VOLUME_THRESHOLD: '3',
      ML_BREAKER_RESET_TIMEOUT: '60000',
      ...env,
    });
    ml = ctx.ref.get(MlService);
    metrics = ctx.ref.get(MetricsService);
    states = [];
    ml.onStateChange((s) => states.push(s));
  }

  beforeEach(() => {
    stub.reset();
  });
  afterEach(async () => {
    await ctx?.close();
    ctx = undefined;
  });

  it('opens no connection to the ML service at start', async () => {
    await setup();
    expect(stub.calls).toHaveLength(0);
    expect(stub.healthCalls).toBe(0);
    expect(stub.openSockets()).toBe(0);
    expect(ml.state()).toBe('closed');
    expect(await metricValue(metrics.mlCircuitState)).toBe(0);
  });

  it('posts the §8 request and maps a 200 to the results', async () => {
    await setup();
    const results = await ml.segment(req(7));
    expect(results).toEqual(stub.validResults());
    expect(results.image_width).toBe(320);
    expect(results.polygons[0].features.centroid_x).toBe(160);
    expect(stub.calls).toHaveLength(1);
    expect(stub.calls[0].body).toEqual({ image_path: 'u1/img-7.png', task_id: 'task-7' });
    expect(await mlRequests(metrics, 'success')).toBe(1);
    expect(await mlDurationCount(metrics)).toBe(1);
    expect(ml.stats()).toMatchObject({ successes: 1, failures: 0, timeouts: 0, rejects: 0 });
  });

  it('4xx → MlBadInputError with a sanitized message; many 400s leave the circuit closed', async () => {
    await setup();
    stub.behave({
      status: 400,
      body: {
        success: false,
        error: 'cannot read image /srv/uploads/u1/secret.png via http://user:pw@ml:5002/x',
      },
    });
    for (let i = 0; i < 10; i++) {
      const err = await ml.segment(req(i)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MlBadInputError);
      const e = err as MlBadInputError;
      expect(e.status).toBe(400);
      expect(e.message).toContain('cannot read image');
      expect(e.message).not.toContain('/srv');
      expect(e.message).not.toContain('pw@');
      expect(e.message).not.toContain('http://');
    }
    expect(stub.calls).toHaveLength(10);
    expect(ml.state()).toBe('closed');
    expect(states).toEqual([]);
    expect(ml.stats().failures).toBe(0);
    expect(await mlRequests(metrics, 'bad_input')).toBe(10);
    expect(await mlRequests(metrics, 'failure')).toBe(0);
  });

  it('5xx opens the circuit after volumeThreshold; then calls are rejected without reaching the service', async () => {
    await setup();
    stub.behave({ status: 500 });
    for (let i = 0; i < 3; i++) {
      await expect(ml.segment(req(i))).rejects.toBeInstanceOf(MlServiceError);
      // the first two calls are below the volume threshold
      if (i < 2) expect(ml.state()).toBe('closed');
    }
    expect(ml.state()).toBe('open');
    expect(ml.isCallable()).toBe(false);
    expect(states).toEqual(['open']);
    expect(await metricValue(metrics.mlCircuitState)).toBe(2);
    expect(await mlRequests(metrics, 'failure')).toBe(3);

    const callsBefore = stub.calls.length;
    const err = await ml.segment(req(99)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlCircuitOpenError);
    expect((err as MlCircuitOpenError).reachedService).toBe(false);
    expect(stub.calls.length).toBe(callsBefore);
    expect(await mlRequests(metrics, 'rejected')).toBe(1);
    expect(ml.stats()).toMatchObject({ failures: 3, rejects: 1 });
  });

  it('after resetTimeout: half-open (waitUntilCallable resolves), then closed on a successful trial', async () => {
    await setup({ ML_BREAKER_RESET_TIMEOUT: '300' });
    stub.behave({ status: 503 });
    for (let i = 0; i < 3; i++) await ml.segment(req(i)).catch(() => undefined);
    expect(ml.state()).toBe('open');

    await ml.waitUntilCallable();
    expect(ml.state()).toBe('halfOpen');
    expect(states).toEqual(['open', 'halfOpen']);
    expect(await metricValue(metrics.mlCircuitState)).toBe(1);

    stub.behave({});
    await expect(ml.segment(req(10))).resolves.toEqual(stub.validResults());
    expect(ml.state()).toBe('closed');
    expect(states).toEqual(['open', 'halfOpen', 'closed']);
    expect(await metricValue(metrics.mlCircuitState)).toBe(0);
  });

  it('a failed half-open trial opens the circuit again', async () => {
    await setup({ ML_BREAKER_RESET_TIMEOUT: '300' });
    stub.behave({ status: 500 });
    for (let i = 0; i < 3; i++) await ml.segment(req(i)).catch(() => undefined);
    await ml.waitUntilCallable();
    const callsBefore = stub.calls.length;
    await expect(ml.segment(req(11))).rejects.toBeInstanceOf(MlServiceError);
    expect(stub.calls.length).toBe(callsBefore + 1); // the trial reached the service
    expect(ml.state()).toBe('open');
    expect(states).toEqual(['open', 'halfOpen', 'open']);
  });

  it('an idle half-open circuit (no trial call) probes /health: healthy → closed, unhealthy → open again', async () => {
    await setup({ ML_BREAKER_RESET_TIMEOUT: '300' });
    stub.behave({ status: 500 }).behaveHealth({ status: 503 });
    for (let i = 0; i < 3; i++) await ml.segment(req(i)).catch(() => undefined);
    const segmentCalls = stub.calls.length;
    // Nobody calls segment from here on: only the probe can move the circuit.
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
    };
    await until(() => states.filter((s) => s === 'open').length >= 2);
    expect(states.slice(0, 3)).toEqual(['open', 'halfOpen', 'open']); // /health answered 503
    expect(stub.healthCalls).toBeGreaterThanOrEqual(1);

    stub.behaveHealth({});
    await until(() => ml.state() === 'closed');
    expect(ml.state()).toBe('closed');
    expect(states[states.length - 1]).toBe('closed');
    expect(stub.calls.length).toBe(segmentCalls); // decided by /health alone, no segment call
  });

  it('a half-open trial call in flight is not overridden by the idle probe', async () => {
    await setup({ ML_BREAKER_RESET_TIMEOUT: '300' });
    stub.behave({ status: 500 });
    for (let i = 0; i < 3; i++) await ml.segment(req(i)).catch(() => undefined);
    await ml.waitUntilCallable();
    const healthBefore = stub.healthCalls;
    stub.behave({ latencyMs: 1200, status: 500 }); // the trial outlasts the probe's grace
    await expect(ml.segment(req(12))).rejects.toBeInstanceOf(MlServiceError);
    expect(stub.healthCalls).toBe(healthBefore); // /health is healthy, but the trial decided: open
    expect(states).toEqual(['open', 'halfOpen', 'open']);
  });

  it('waitUntilCallable resolves at once when closed and rejects when its signal aborts', async () => {
    await setup();
    await expect(ml.waitUntilCallable()).resolves.toBeUndefined();

    stub.behave({ status: 500 });
    for (let i = 0; i < 3; i++) await ml.segment(req(i)).catch(() => undefined);
    expect(ml.state()).toBe('open');
    const ac = new AbortController();
    const waiting = ml.waitUntilCallable(ac.signal);
    let settled = false;
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    ac.abort(new Error('stop waiting'));
    await expect(waiting).rejects.toThrow('stop waiting');
  });

  it('a hanging service → MlTimeoutError at ML_SERVICE_TIMEOUT and the request socket is closed', async () => {
    await setup({ ML_SERVICE_TIMEOUT: '300' });
    stub.behave({ hang: true });
    const call = ml.segment(req(1)).catch((e: unknown) => e);
    await stub.waitForCalls(1);
    expect(stub.pendingRequests()).toBe(1);
    const err = await call;
    expect(err).toBeInstanceOf(MlTimeoutError);
    expect((err as MlTimeoutError).timeoutMs).toBe(300);
    // the stub never answers: only the client's abort can close that connection
    await stub.waitForPendingRequests(0, 5000);
    // and nothing stays open (undici's spare idle connection closes after its keep-alive timeout)
    await stub.waitForOpenSockets(0, 20_000);
    expect(await mlRequests(metrics, 'timeout')).toBe(1);
    expect(ml.stats()).toMatchObject({ timeouts: 1, failures: 1 });
  });

  it('repeated timeouts do not pile up sockets', async () => {
    await setup({ ML_SERVICE_TIMEOUT: '200', ML_BREAKER_VOLUME_THRESHOLD: '1000' });
    stub.behave({ hang: true });
    for (let round = 0; round < 4; round++) {
      const results = await Promise.all([1, 2, 3].map((n) => ml.segment(req(n)).catch((e: unknown) => e)));
      for (const r of results) expect(r).toBeInstanceOf(MlTimeoutError);
      // every hung request's connection was closed by the client's abort
      await stub.waitForPendingRequests(0, 5000);
    }
    // and nothing accumulates: every connection is closed in the end
    await stub.waitForOpenSockets(0, 20_000);
    expect(stub.calls).toHaveLength(12);
    expect(ml.stats().timeouts).toBe(12);
    expect(ml.state()).toBe('closed'); // volume threshold not reached
  });

  it("the caller's signal aborts the call (MlAbortedError), closes the socket and is not a failure", async () => {
    await setup();
    stub.behave({ hang: true });
    const ac = new AbortController();
    const call = ml.segment(req(1), { signal: ac.signal }).catch((e: unknown) => e);
    await stub.waitForCalls(1);
    ac.abort();
    expect(await call).toBeInstanceOf(MlAbortedError);
    await stub.waitForPendingRequests(0, 5000);
    expect(ml.stats().failures).toBe(0);
    expect(ml.state()).toBe('closed');
  });

  it('refused connection → MlServiceError without the URL; back to success once the service is back', async () => {
    await setup();
    await stub.stop();
    try {
      const err = await ml.segment(req(1)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MlServiceError);
      expect((err as Error).message).toMatch(/unreachable/);
      expect((err as Error).message).not.toContain(String(stub.port));
      expect((err as Error).message).not.toContain('127.0.0.1');
    } finally {
      await stub.restart();
    }
    await expect(ml.segment(req(2))).resolves.toEqual(stub.validResults());
    expect(await mlRequests(metrics, 'failure')).toBe(1);
    expect(await mlRequests(metrics, 'success')).toBe(1);
  });

  it('malformed bodies and dropped connections are MlServiceError and count as failures', async () => {
    await setup({ ML_BREAKER_VOLUME_THRESHOLD: '100' });
    stub.enqueue(
      { raw: 'not json' },
      { body: { success: true, results: { image_width: 1 } } },
      { body: { success: false, error: 'x' } },
      { destroy: true },
      { status: 302, raw: '' },
    );
    for (let i = 0; i < 5; i++) {
      await expect(ml.segment(req(i))).rejects.toBeInstanceOf(MlServiceError);
    }
    expect(ml.stats().failures).toBe(5);
    expect(await mlRequests(metrics, 'failure')).toBe(5);
  });

  it('credentials in ML_SERVICE_URL go as Basic auth and never into error messages', async () => {
    const withCreds = new URL(stub.url);
    withCreds.username = 'svc';
    withCreds.password = 's3cr3t-pw';
    await setup({ ML_SERVICE_URL: withCreds.toString() });
    await ml.segment(req(1));
    expect(stub.calls[0].authorization).toBe(`Basic ${Buffer.from('svc:s3cr3t-pw').toString('base64')}`);
    stub.behave({ status: 500 });
    const err = (await ml.segment(req(2)).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(MlServiceError);
    expect(err.message).not.toContain('s3cr3t-pw');
    expect(err.message).not.toContain(stub.url.replace(/^http:\/\//, ''));
  });

  it('rejects with MlCircuitOpenError after shutdown', async () => {
    await setup();
    const ref = ctx!;
    await ref.close();
    ctx = undefined;
    await expect(ml.segment(req(1))).rejects.toBeInstanceOf(MlCircuitOpenError);
    expect(stub.calls).toHaveLength(0);
  });
});
