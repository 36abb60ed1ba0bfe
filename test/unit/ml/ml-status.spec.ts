import Redis from 'ioredis';
import { ML_STATUS_READER, MlStatusReader } from '../../../src/common/contracts';
import { MlHttpClient } from '../../../src/ml/ml-http.client';
import { MlHealthIndicator } from '../../../src/ml/ml.health';
import { MlService } from '../../../src/ml/ml.service';
import { ML_STATUS_TTL_MS, MlStatusService } from '../../../src/ml/ml-status.service';
import {
  MlBadInputError,
  MlServiceError,
  MlTimeoutError,
  sanitizeMlMessage,
} from '../../../src/ml/ml.errors';
import { HEALTH_CONTRIBUTOR } from '../../../src/health/health-contributor';
import { MlStub } from '../../support/ml-stub';
import { buildMlModule } from './ml-test-module';

const QUEUE_NAME = `test_ml_status_${Date.now()}_${process.pid}`;
const KEY = `${QUEUE_NAME}:ml:status`;
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Polls `fn` until it returns true (generous bound; never asserts on durations). */
async function eventually(fn: () => Promise<boolean> | boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('MlStatusService, MlHealthIndicator and MlHttpClient.health', () => {
  const stub = new MlStub();
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const contexts: Array<Awaited<ReturnType<typeof buildMlModule>>> = [];

  const build = async (env: Record<string, string>) => {
    const ctx = await buildMlModule({
      QUEUE_NAME,
      REDIS_URL,
      ENABLE_QUEUE: 'true',
      ML_SERVICE_URL: stub.url,
      ML_SERVICE_TIMEOUT: '2000',
      ML_BREAKER_VOLUME_THRESHOLD: '2',
      ML_BREAKER_RESET_TIMEOUT: '60000',
      ...env,
    });
    contexts.push(ctx);
    return ctx;
  };

  beforeAll(async () => {
    await stub.start();
  });
  beforeEach(async () => {
    stub.reset();
    await redis.del(KEY);
  });
  afterEach(async () => {
    while (contexts.length) await contexts.pop()!.close();
  });
  afterAll(async () => {
    await redis.del(KEY);
    redis.disconnect();
    await stub.stop();
  });

  it('worker: publishes its breaker snapshot with a TTL, and again on every state change', async () => {
    const { ref } = await build({ APP_ROLE: 'worker' });
    const status = ref.get(MlStatusService);
    const ml = ref.get(MlService);
    expect(status.ownsBreaker).toBe(true);

    await eventually(async () => (await redis.get(KEY)) !== null);
    const first = JSON.parse((await redis.get(KEY))!) as Record<string, unknown>;
    expect(first).toMatchObject({ state: 'closed', available: true, stats: { successes: 0, failures: 0 } });
    expect(typeof first.updatedAt).toBe('string');
    const ttl = await redis.pttl(KEY);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(ML_STATUS_TTL_MS);

    stub.behave({ status: 500 });
    await ml.segment({ image_path: 'a.png', task_id: 't1' }).catch(() => undefined);
    await ml.segment({ image_path: 'a.png', task_id: 't2' }).catch(() => undefined);
    expect(ml.state()).toBe('open');
    await eventually(async () => JSON.parse((await redis.get(KEY)) ?? '{}').state === 'open');
    const opened = JSON.parse((await redis.get(KEY))!) as Record<string, unknown>;
    expect(opened).toMatchObject({ state: 'open', available: false, stats: { failures: 2 } });

    // worker answers from its own breaker
    await expect(status.current()).resolves.toEqual({ state: 'open', available: false });
    await expect(ref.get<MlStatusReader>(ML_STATUS_READER).current()).resolves.toEqual({
      state: 'open',
      available: false,
    });
    const health = await ref.get(MlHealthIndicator).check();
    expect(health.up).toBe(false);
    expect(health.details).toMatchObject({
      circuit: 'open',
      stats: { failures: 2, successes: 0, timeouts: 0, rejects: 0 },
    });
  });

  it('api: never calls the ML service; no key means open/unavailable; reads what a worker publishes', async () => {
    const api = await build({ APP_ROLE: 'api' });
    const apiStatus = api.ref.get(MlStatusService);
    expect(apiStatus.ownsBreaker).toBe(false);
    expect(api.ref.get(ML_STATUS_READER)).toBe(apiStatus);

    await expect(apiStatus.current()).resolves.toEqual({ state: 'open', available: false });
    const down = await api.ref.get(MlHealthIndicator).check();
    expect(down).toEqual({
      up: false,
      details: {
        circuit: 'open',
        stats: { successes: 0, failures: 0, timeouts: 0, rejects: 0, latencyMeanMs: 0 },
      },
    });
    // the api process does not publish
    expect(await redis.get(KEY)).toBeNull();

    const worker = await build({ APP_ROLE: 'worker' });
    await worker.ref.get(MlService).segment({ image_path: 'a.png', task_id: 't1' });
    await worker.ref.get(MlStatusService).publish();
    await eventually(async () => (await apiStatus.current()).available);
    await expect(apiStatus.current()).resolves.toEqual({ state: 'closed', available: true });
    await expect(apiStatus.details()).resolves.toMatchObject({ circuit: 'closed', stats: { successes: 1 } });
    const up = await api.ref.get(MlHealthIndicator).check();
    expect(up.up).toBe(true);
    expect(up.details).toMatchObject({ circuit: 'closed', stats: { successes: 1, failures: 0 } });

    expect(stub.calls).toHaveLength(1); // the worker's call only
    expect(stub.healthCalls).toBe(0);
  });

  it('api with ENABLE_QUEUE=false segments itself, so it owns its breaker', async () => {
    const { ref } = await build({ APP_ROLE: 'api', ENABLE_QUEUE: 'false' });
    expect(ref.get(MlStatusService).ownsBreaker).toBe(true);
    await expect(ref.get(MlStatusService).current()).resolves.toEqual({ state: 'closed', available: true });
  });

  it('api: a garbage value under the key reads as open/unavailable', async () => {
    const { ref } = await build({ APP_ROLE: 'api' });
    await redis.set(KEY, 'not json', 'PX', 5000);
    await expect(ref.get(MlStatusService).current()).resolves.toEqual({ state: 'open', available: false });
  });

  it('health settles and never throws when Redis is unreachable (api role)', async () => {
    const { ref } = await build({ APP_ROLE: 'api', REDIS_URL: 'redis://127.0.0.1:1' });
    const started = Date.now();
    const res = await ref.get(MlHealthIndicator).check();
    expect(res.up).toBe(false);
    expect(res.details).toMatchObject({ circuit: 'open' });
    expect(Date.now() - started).toBeLessThan(3000); // contract: ~1 s; generous bound
  });

  it('MlHealthIndicator carries the health-contributor metadata (ml, not critical, not readiness)', () => {
    expect(Reflect.getMetadata(HEALTH_CONTRIBUTOR, MlHealthIndicator)).toEqual({
      service: 'ml',
      critical: false,
      readiness: false,
    });
  });

  it('MlHttpClient.health: §8 answer, 5xx, 4xx, and timeout', async () => {
    const { ref } = await build({ APP_ROLE: 'worker' });
    const client = ref.get(MlHttpClient);
    await expect(client.health(1000)).resolves.toEqual({ status: 'healthy', model_loaded: true });
    stub.behaveHealth({ status: 503 });
    await expect(client.health(1000)).rejects.toBeInstanceOf(MlServiceError);
    stub.behaveHealth({ status: 404 });
    await expect(client.health(1000)).rejects.toBeInstanceOf(MlBadInputError);
    stub.behaveHealth({ hang: true });
    const err = await client.health(200).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MlTimeoutError);
    await stub.waitForPendingRequests(0, 5000);
    expect(stub.healthCalls).toBe(4);
  });

  it('sanitizeMlMessage strips paths, URLs and secrets', () => {
    const s = sanitizeMlMessage(
      'bad image C:\\data\\x.png and /var/uploads/a.png at https://u:p@host/x token=abc123 ../etc/passwd\n',
    );
    expect(s).not.toMatch(/C:\\|\/var|https?:|abc123|etc\/passwd|\n/);
    expect(s).toContain('bad image');
    expect(sanitizeMlMessage(undefined)).toBe('ML service rejected the input');
    expect(sanitizeMlMessage('x'.repeat(1000)).length).toBeLessThanOrEqual(300);
  });
});
