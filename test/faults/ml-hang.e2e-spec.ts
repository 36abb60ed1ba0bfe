import type { BackendProcess } from '../support/processes';
import {
  FaultStack,
  report,
  sleep,
  startStack,
  summarize,
  until,
  uploadMany,
  enqueueBatch,
  waitAllCompleted,
} from './harness';

/**
 * The ML service accepts connections and never answers. Calls must time out and be aborted (no pile
 * of open requests), the circuit must open, tasks must wait with their attempts intact, the worker
 * must stay responsive, and once the ML service answers again every task completes.
 */
describe('faults: the ML service hangs', () => {
  let s: FaultStack;

  beforeAll(async () => {
    s = await startStack();
  }, 60_000);
  afterAll(async () => {
    await s?.teardown();
  }, 60_000);

  it('calls time out and are aborted (bounded by QUEUE_CONCURRENCY), the circuit opens, tasks wait with attempts < QUEUE_MAX_ATTEMPTS, then all complete', async () => {
    const CONCURRENCY = 3;
    const MAX_ATTEMPTS = 10;
    const db = s.newDatabase();
    const mlEnv = {
      ML_SERVICE_TIMEOUT: '500',
      ML_BREAKER_VOLUME_THRESHOLD: '2',
      ML_BREAKER_RESET_TIMEOUT: '1000',
      QUEUE_CONCURRENCY: String(CONCURRENCY),
      QUEUE_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    };
    const api = await s.start('api', db, mlEnv, 'api');
    const worker = await s.start('worker', db, mlEnv, 'worker');
    const { token } = await api.register();
    const sql = await s.sql(db);
    const images = await uploadMany(api, token, 8);

    s.stub.reset().behave({ hang: true });
    const maxSeen = { pending: 0, sockets: 0, liveMs: 0 };
    let watching = true;
    const watch = (async () => {
      while (watching) {
        maxSeen.pending = Math.max(maxSeen.pending, s.stub.pendingRequests());
        maxSeen.sockets = Math.max(maxSeen.sockets, s.stub.openSockets());
        await sleep(25);
      }
    })();
    // The worker's event loop keeps answering while its jobs wait (no spinning on the open circuit).
    const liveWatch = (async () => {
      while (watching) {
        const t0 = performance.now();
        const st = await worker
          .request('/api/health/live', { timeoutMs: 5000 })
          .then((r) => r.status)
          .catch(() => 0);
        maxSeen.liveMs = Math.max(maxSeen.liveMs, st === 200 ? performance.now() - t0 : Infinity);
        await sleep(200);
      }
    })();

    const hangStart = Date.now();
    const tasks = await enqueueBatch(api, token, images);
    const mlHealth = async () => {
      const res = await worker.request('/api/health/services/ml');
      return { status: res.status, body: (await res.json()) as { details: { circuit: string } } };
    };
    await until(
      'circuit open on the worker',
      async () => (await mlHealth()).body.details.circuit === 'open',
      15_000,
    );
    const open = await mlHealth();
    expect(open.status).toBe(503);

    // Stay hung a while: trial calls keep failing, tasks keep waiting.
    await sleep(6000);
    const during = await summarize(sql, tasks);
    const hangCalls = s.stub.calls.length;
    const hangSeconds = (Date.now() - hangStart) / 1000;
    expect(during.byStatus.failed ?? 0).toBe(0);
    expect(during.byStatus.completed ?? 0).toBe(0);
    expect(Math.max(...Object.values(during.attempts))).toBeLessThan(MAX_ATTEMPTS);
    // Without a breaker 3 slots would call every ~0.7 s (~30 calls); with it, the first few plus
    // about one half-open trial per reset period. One call per second is a generous ceiling.
    expect(hangCalls).toBeGreaterThanOrEqual(2);
    expect(hangCalls).toBeLessThanOrEqual(CONCURRENCY + Math.ceil(hangSeconds) + 2);
    // Hung calls were aborted at the timeout, not left to pile up.
    expect(s.stub.pendingRequests()).toBeLessThanOrEqual(CONCURRENCY);

    s.stub.behave({});
    const end = await waitAllCompleted(sql, tasks, 45_000);
    watching = false;
    await Promise.all([watch, liveWatch]);
    report('ml hang', {
      hangCalls,
      hangSeconds,
      attemptsDuring: Object.values(during.attempts),
      attemptsEnd: Object.values(end.attempts),
      ...maxSeen,
    });
    expect(end.byStatus).toEqual({ completed: tasks.length });
    expect(end.notOneResult).toEqual([]);
    expect(Math.max(...Object.values(end.attempts))).toBeLessThan(MAX_ATTEMPTS);
    expect(maxSeen.pending).toBeLessThanOrEqual(CONCURRENCY);
    // fetch keeps at most one spare idle socket per aborted slot (see MlStub.openSockets).
    expect(maxSeen.sockets).toBeLessThanOrEqual(2 * CONCURRENCY);
    expect(maxSeen.liveMs).toBeLessThan(2000);
    await s.stub.waitForPendingRequests(0, 5000);
    await until(
      'circuit closed again',
      async () => (await mlHealth()).body.details.circuit === 'closed',
      10_000,
    );
    expect(worker.exitInfo()).toBeUndefined();
    await stopBoth(api, worker);
  }, 120_000);
});

async function stopBoth(a: BackendProcess, b: BackendProcess): Promise<void> {
  await Promise.all([a.stop(), b.stop()]);
}
