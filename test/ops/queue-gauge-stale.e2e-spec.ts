import { startRedis, type RedisInstance } from '../support/redis-instance';
import { type BackendProcess, metricValue, startProcess, stopAllProcesses } from '../support/processes';
import { sleep } from './npm-run';

/**
 * Dashboards and KEDA take the max of segmentation_queue_jobs over every pod (they all export the same
 * global counts). A pod that can no longer read the counts must then export none, not the last figures
 * it read: a stale high value would hold the max, and the worker count, up.
 */
let redis: RedisInstance;
let api: BackendProcess;

beforeAll(async () => {
  redis = await startRedis();
  api = await startProcess({
    role: 'api',
    env: { REDIS_URL: redis.url, ADMIN_EMAIL: 'ops@lab.test', ADMIN_PASSWORD: 'ops-password-1' },
  });
}, 60_000);

afterAll(async () => {
  await stopAllProcesses(5000);
  await redis?.destroy();
});

const scrape = async () => (await api.request('/api/metrics', { timeoutMs: 10_000 })).text();

it('exports the queue gauges while Redis answers, and none once it does not', async () => {
  const login = await api.request('/api/auth/login', {
    method: 'POST',
    json: { email: 'ops@lab.test', password: 'ops-password-1' },
  });
  expect(login.status).toBe(200);
  const { token } = await api.register();
  const form = new FormData();
  const { makePng } = await import('../support/fixtures');
  form.append('file', new Blob([await makePng()]), 'a.png');
  const up = await api.request('/api/images', { method: 'POST', body: form, token });
  const image = (await up.json()).id as number;
  expect(
    (await api.request(`/api/images/${image}/segmentation`, { method: 'POST', token, json: {} })).status,
  ).toBe(202);

  const before = await scrape();
  expect(metricValue(before, 'segmentation_queue_jobs', { state: 'waiting' })).toBe(1);

  await redis.stop();
  let after = '';
  for (let i = 0; i < 20; i++) {
    after = await scrape();
    if (!/^segmentation_queue_jobs\{/m.test(after)) break;
    await sleep(250);
  }
  expect(after).toContain('# TYPE segmentation_queue_jobs gauge');
  expect(after.split('\n').filter((l) => l.startsWith('segmentation_queue_jobs{'))).toEqual([]);

  await redis.start();
  const deadline = Date.now() + 20_000;
  while (!/^segmentation_queue_jobs\{state="waiting"\}/m.test(await scrape())) {
    if (Date.now() > deadline) throw new Error('queue gauges did not come back with Redis');
    await sleep(250);
  }
}, 60_000);
