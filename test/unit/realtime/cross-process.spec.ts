import { randomBytes } from 'node:crypto';
import { EventsGateway } from '../../../src/realtime/events.gateway';
import { RealtimeModule } from '../../../src/realtime/realtime.module';
import {
  client,
  closeClients,
  connected,
  RealtimeTestApp,
  setEnv,
  sleep,
  startRealtimeApp,
  TestClient,
  tokens,
  uniqueQueueName,
  waitFor,
} from './realtime-harness';

const JWT_SECRET = randomBytes(24).toString('hex');
const QUEUE_NAME = uniqueQueueName('xp');
const restoreEnv = setEnv({ QUEUE_NAME, JWT_SECRET, NODE_ENV: 'test' });
const sign = tokens(JWT_SECRET);

/**
 * Several "processes" (Nest apps) of one deployment on one Redis: two api apps with the gateway and a
 * worker app without one. Events published anywhere reach the user's sockets on any api app.
 */
describe('Realtime across processes (Redis adapter + emitter)', () => {
  let api1: RealtimeTestApp;
  let api2: RealtimeTestApp;
  let worker: RealtimeTestApp;
  /** A worker of another deployment (different QUEUE_NAME) on the same Redis. */
  let foreign: RealtimeTestApp;
  const clients: TestClient[] = [];

  const openUser = async (url: string, sub: number) => {
    const c = client(url, { token: sign(sub) });
    clients.push(c);
    await connected(c);
    await waitFor(() => c.named('ml:status').length === 1, 'initial ml:status');
    return c;
  };

  beforeAll(async () => {
    api1 = await startRealtimeApp('api');
    api2 = await startRealtimeApp('api', { install: 'helper' }); // through useRealtimeAdapter(app)
    worker = await startRealtimeApp('worker');
    const restore = setEnv({ QUEUE_NAME: `${QUEUE_NAME}_other` });
    try {
      foreign = await startRealtimeApp('worker');
    } finally {
      restore();
    }
  });
  afterEach(() => closeClients(clients));
  afterAll(async () => {
    await Promise.allSettled([api1, api2, worker, foreign].filter(Boolean).map((a) => a.close()));
    restoreEnv();
  });

  it('the worker app has the publisher but no gateway', () => {
    expect(() => worker.app.get(EventsGateway, { strict: false })).toThrow();
    expect(api1.app.get(EventsGateway, { strict: false })).toBeInstanceOf(EventsGateway);
  });

  it('forRole returns one module per role, so several importers share one gateway and publisher', () => {
    expect(RealtimeModule.forRole('api')).toBe(RealtimeModule.forRole('api'));
    expect(RealtimeModule.forRole('worker')).toBe(RealtimeModule.forRole('worker'));
  });

  it('a client on api #2 receives what api #1 publishes, and vice versa', async () => {
    const on2 = await openUser(api2.url, 101);
    const on1 = await openUser(api1.url, 102);
    api1.publisher.toUser(101, 'segmentation:queued', { taskId: 'x1', imageId: 1, priority: 3 });
    api2.publisher.toUser(102, 'segmentation:queued', { taskId: 'x2', imageId: 2, priority: 4 });
    await waitFor(() => on2.named('segmentation:queued').length === 1, 'event on api #2');
    await waitFor(() => on1.named('segmentation:queued').length === 1, 'event on api #1');
    expect(on2.named('segmentation:queued')).toEqual([{ taskId: 'x1', imageId: 1, priority: 3 }]);
    expect(on1.named('segmentation:queued')).toEqual([{ taskId: 'x2', imageId: 2, priority: 4 }]);
  });

  it('a worker app (no gateway, no HTTP listener) reaches the user on both api apps, in order, and nobody else', async () => {
    const a1 = await openUser(api1.url, 111);
    const a2 = await openUser(api2.url, 111);
    const other = await openUser(api2.url, 112);

    worker.publisher.toUser(111, 'segmentation:progress', { taskId: 'w', imageId: 9, progress: 10 });
    worker.publisher.toUser(111, 'segmentation:failed', {
      taskId: 'w',
      imageId: 9,
      error: 'ML down',
      attempt: 1,
      willRetry: true,
    });
    worker.publisher.toUser(111, 'segmentation:progress', { taskId: 'w', imageId: 9, progress: 10 });
    worker.publisher.toUser(111, 'segmentation:completed', {
      taskId: 'w',
      imageId: 9,
      polygonCount: 0,
      spheroidCount: 0,
      processingTimeMs: 1,
    });
    worker.publisher.toUser(112, 'segmentation:cancelled', { taskId: 'o', imageId: 10 }); // after 111's, same connection

    await waitFor(() => other.named('segmentation:cancelled').length === 1, "the other user's own event");
    await waitFor(
      () =>
        a1.named('segmentation:completed').length === 1 && a2.named('segmentation:completed').length === 1,
      'completion on both',
    );
    const seq = (c: TestClient) => c.events.filter((e) => e.event !== 'ml:status').map((e) => e.event);
    const expected = [
      'segmentation:progress',
      'segmentation:failed',
      'segmentation:progress',
      'segmentation:completed',
    ];
    expect(seq(a1)).toEqual(expected);
    expect(seq(a2)).toEqual(expected);
    expect(seq(other)).toEqual(['segmentation:cancelled']);
  });

  it('broadcastMlStatus from the worker reaches everybody on every api app', async () => {
    const c1 = await openUser(api1.url, 121);
    const c2 = await openUser(api2.url, 122);
    worker.publisher.broadcastMlStatus({ state: 'open', available: false });
    await waitFor(
      () => c1.named('ml:status').length === 2 && c2.named('ml:status').length === 2,
      'broadcast on both',
    );
    expect(c1.named('ml:status')[1]).toEqual({ state: 'open', available: false });
    expect(c2.named('ml:status')[1]).toEqual({ state: 'open', available: false });
  });

  it('another deployment (different QUEUE_NAME) on the same Redis does not cross-talk', async () => {
    const c = await openUser(api1.url, 131);
    foreign.publisher.toUser(131, 'segmentation:cancelled', { taskId: 'foreign', imageId: 1 });
    foreign.publisher.broadcastMlStatus({ state: 'halfOpen', available: true });
    await sleep(300);
    worker.publisher.toUser(131, 'segmentation:cancelled', { taskId: 'ours', imageId: 1 });
    await waitFor(() => c.named('segmentation:cancelled').length >= 1, 'our own event');
    await sleep(100);
    expect(c.named('segmentation:cancelled')).toEqual([{ taskId: 'ours', imageId: 1 }]);
    expect(c.named('ml:status')).toHaveLength(1);
  });
});
