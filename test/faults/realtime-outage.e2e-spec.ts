import { Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import Redis from 'ioredis';
import net from 'node:net';
import type { queueConfig, redisConfig } from '../../src/config/configuration';
import { RealtimePublisher } from '../../src/realtime/realtime.publisher';
import { RedisFactory } from '../../src/redis/redis.factory';
import { until } from '../support/checks';
import { RedisInstance, startRedis } from '../support/redis-instance';

/**
 * A TCP relay between the publisher and a Redis of the suite's own. `refuse` cuts every connection and
 * drops new ones (Redis unreachable for that process only), while the suite's subscriber, connected to
 * Redis directly, stays subscribed: what reaches it after the outage is what the publisher sent.
 */
class Relay {
  mode: 'pass' | 'refuse' = 'pass';
  private readonly server = net.createServer((socket) => this.accept(socket));
  private readonly open = new Set<net.Socket>();

  constructor(private readonly target: number) {}

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `redis://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  refuse(): void {
    this.mode = 'refuse';
    for (const s of this.open) s.destroy();
  }

  async stop(): Promise<void> {
    this.refuse();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    if (this.mode === 'refuse') {
      socket.destroy();
      return;
    }
    const upstream = net.connect(this.target, '127.0.0.1');
    for (const s of [socket, upstream]) {
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
      s.on('error', () => undefined);
    }
    socket.pipe(upstream).pipe(socket);
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  }
}

/**
 * README "What happens to a task" (events): socket.io events are published on the process's command
 * connection; while Redis is unreachable they wait in that connection's offline queue, never throwing
 * into or blocking the caller, and are dropped with a rate-limited warning when ioredis gives up on
 * them (its `maxRetriesPerRequest`, 20 reconnection attempts). The publisher here is the app's own
 * (RealtimePublisher over RedisFactory's command connection), on a Redis of the suite's own.
 */
describe('faults: socket.io events while Redis is unreachable', () => {
  let redis: RedisInstance;
  let relay: Relay;
  let factory: RedisFactory;
  let publisher: RealtimePublisher;
  let subscriber: Redis;
  const received: string[] = [];
  const QUEUE = 'outage';

  const commands = () => factory.commands() as Redis;
  /** The ids of the tasks whose events reached the subscriber, in the order they arrived. */
  const arrived = (marker: string) =>
    received
      .map((m) => new RegExp(`${marker}-(\\d+)`).exec(m)?.[1])
      .filter((x): x is string => x !== undefined);
  const publish = (marker: string, i: number) =>
    publisher.toTask(
      { taskId: `${marker}-${i}`, imageId: i, userId: 7, projectId: null },
      'segmentation:progress',
      { progress: 50 },
    );
  /** PUBLISH commands waiting in the command connection's offline queue (the ready check's INFO waits there too). */
  const waitingPublishes = () =>
    (
      commands() as unknown as { offlineQueue: { toArray(): Array<{ command: { name: string } }> } }
    ).offlineQueue
      .toArray()
      .filter((x) => x.command.name === 'publish').length;
  const nextTurn = () => new Promise((r) => setImmediate(r));
  const ready = (c: Redis) =>
    c.status === 'ready' ? Promise.resolve() : new Promise<void>((r) => c.once('ready', () => r()));

  beforeAll(async () => {
    redis = await startRedis();
    relay = new Relay(redis.port);
    const url = await relay.start();
    factory = new RedisFactory({
      url,
      clusterNodes: [],
      sentinels: [],
      sentinelName: '',
    } as unknown as ConfigType<typeof redisConfig>);
    publisher = new RealtimePublisher(factory, { name: QUEUE } as ConfigType<typeof queueConfig>);
    subscriber = redis.client();
    subscriber.on('pmessageBuffer', (_p: Buffer, _c: Buffer, message: Buffer) =>
      received.push(message.toString('latin1')),
    );
    await subscriber.psubscribe(`socket.io#${QUEUE}#*`);
    await ready(commands());
  });
  afterAll(async () => {
    await factory?.onApplicationShutdown();
    await subscriber?.quit().catch(() => subscriber.disconnect());
    await relay?.stop();
    await redis?.destroy();
  });
  afterEach(() => {
    jest.restoreAllMocks();
    relay.mode = 'pass';
  });

  it('a short outage: events wait in the offline queue without blocking the caller, then all arrive, in order', async () => {
    publish('short', 0);
    await until('the event before the outage', () => arrived('short').length === 1, 5000, 20);
    const closed = new Promise<void>((r) => commands().once('close', () => r()));
    relay.refuse();
    await closed;
    for (let i = 1; i <= 5; i++) expect(() => publish('short', i)).not.toThrow();
    await nextTurn(); // the command connection auto-pipelines: a tick's commands are sent after it
    expect(waitingPublishes()).toBe(5);
    expect(arrived('short')).toEqual(['0']);
    relay.mode = 'pass';
    await until('the events queued during the outage', () => arrived('short').length === 6, 15_000, 20);
    expect(arrived('short')).toEqual(['0', '1', '2', '3', '4', '5']);
  }, 30_000);

  it('a long outage: once ioredis gives up, the waiting events are dropped with one rate-limited warning and the queue empties; later events arrive', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const closed = new Promise<void>((r) => commands().once('close', () => r()));
    relay.refuse();
    await closed;
    for (let i = 1; i <= 50; i++) publish('long', i);
    await nextTurn();
    expect(waitingPublishes()).toBe(50);
    // ioredis fails each queued command after maxRetriesPerRequest (20) reconnection attempts: ≈ 10 s
    // with its default retry delays when every attempt is cut.
    await until(
      'the drop warning',
      () => warn.mock.calls.some((c) => c[1] === 'socket.io event dropped'),
      40_000,
    );
    expect(waitingPublishes()).toBe(0);
    const drops = warn.mock.calls.filter((c) => c[1] === 'socket.io event dropped');
    expect(drops).toHaveLength(1); // 50 drops, one line
    expect(JSON.stringify(drops[0][0])).toMatch(/max retries|maxRetriesPerRequest|MaxRetriesPerRequest/i);
    relay.mode = 'pass';
    await ready(commands());
    publish('long', 51);
    await until('the event after the outage', () => arrived('long').length === 1, 15_000, 20);
    expect(arrived('long')).toEqual(['51']);
  }, 60_000);
});
