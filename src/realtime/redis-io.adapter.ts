import { INestApplication, INestApplicationContext, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Server, ServerOptions } from 'socket.io';
import { appConfig, queueConfig } from '../config/configuration';
import { RedisClient, RedisFactory } from '../redis/redis.factory';
import { socketIoKey } from './realtime.constants';
import { socketCorsOptions } from './realtime.cors';

/** How long start-up waits for the adapter's Redis connections before going on without them. */
const READY_TIMEOUT_MS = 5000;

/**
 * Nest's Socket.IO adapter with the Redis adapter of `@socket.io/redis-adapter`: every server it
 * creates receives what any process publishes on `key` (RealtimePublisher uses the same key), so a
 * user's events reach their sockets on whichever api process they are connected to. Works on the
 * Fastify platform (the server attaches to Fastify's underlying HTTP server).
 *
 * It also applies the configured CORS policy (`socketCorsOptions`) to the servers it creates. Its two
 * Redis clients come from RedisFactory and are closed when the application closes.
 */
export class RedisIoAdapter extends IoAdapter {
  private readonly logger = new Logger(RedisIoAdapter.name);
  private adapterConstructor?: ReturnType<typeof createAdapter>;
  private readonly clients: RedisClient[] = [];

  constructor(private readonly app: INestApplicationContext) {
    super(app);
  }

  /** Creates the pub/sub clients and the Redis adapter. Call before the application initialises. */
  async connectToRedis(factory: RedisFactory, key: string): Promise<void> {
    const pub = factory.create('socket.io-pub');
    const sub = factory.create('socket.io-sub');
    this.clients.push(pub, sub);
    const ready = await Promise.all([whenReady(pub), whenReady(sub)]);
    if (ready.includes(false)) {
      // Not fatal: ioredis keeps reconnecting and re-subscribes; cross-process events resume then.
      this.logger.warn({ key }, 'Redis not ready for the Socket.IO adapter yet; continuing');
    }
    this.adapterConstructor = createAdapter(pub, sub, { key });
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const cors = this.corsFromConfig();
    const server = super.createIOServer(
      port,
      cors && !options?.cors ? { ...options, cors } : options,
    ) as Server;
    if (this.adapterConstructor) server.adapter(this.adapterConstructor);
    return server;
  }

  /**
   * Called by Nest when the application closes (after the servers are closed, before the shutdown
   * hooks): closes the adapter's clients and waits for them to end, so RedisFactory does not close
   * them a second time.
   */
  override async dispose(): Promise<void> {
    await super.dispose();
    const clients = this.clients.splice(0);
    await Promise.allSettled(clients.map((c) => closeClient(c)));
  }

  private corsFromConfig(): ServerOptions['cors'] | undefined {
    try {
      return socketCorsOptions(this.app.get<ConfigType<typeof appConfig>>(appConfig.KEY, { strict: false }));
    } catch {
      return undefined; // no configuration in this container: Socket.IO's default (no CORS headers)
    }
  }
}

/**
 * Installs RedisIoAdapter on `app` with the deployment's channel key (`socket.io#<QUEUE_NAME>`), using
 * RedisFactory and the configuration of the app's container. The bootstrap calls it for roles `api`
 * and `all` before `app.listen()`; for `worker` (no gateway) it does nothing.
 */
export async function useRealtimeAdapter(app: INestApplication): Promise<void> {
  const role = app.get<ConfigType<typeof appConfig>>(appConfig.KEY, { strict: false }).role;
  if (role === 'worker') return;
  const queue = app.get<ConfigType<typeof queueConfig>>(queueConfig.KEY, { strict: false });
  const adapter = new RedisIoAdapter(app);
  await adapter.connectToRedis(app.get(RedisFactory, { strict: false }), socketIoKey(queue.name));
  app.useWebSocketAdapter(adapter);
}

function whenReady(client: RedisClient): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), READY_TIMEOUT_MS);
    timer.unref();
    client.on('ready', onReady);
  });
}

async function closeClient(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
  // 'end' follows quit/disconnect; the bound only guards against a client stuck in between.
  await Promise.race([ended, new Promise<void>((resolve) => setTimeout(resolve, 3000).unref())]);
}
