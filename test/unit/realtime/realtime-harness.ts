import { DynamicModule, Module } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { io, Socket as ClientSocket } from 'socket.io-client';
import type { AppRole } from '../../../src/config/app-role';
import { ML_STATUS_READER, MlStatusReader, MlStatusSnapshot } from '../../../src/common/contracts';
import { AppConfigModule } from '../../../src/config/config.module';
import { RedisFactory } from '../../../src/redis/redis.factory';
import { RedisModule } from '../../../src/redis/redis.module';
import { RealtimeModule } from '../../../src/realtime/realtime.module';
import { RealtimePublisher } from '../../../src/realtime/realtime.publisher';
import { RedisIoAdapter, useRealtimeAdapter } from '../../../src/realtime/redis-io.adapter';
import { socketIoKey } from '../../../src/realtime/realtime.constants';
import {
  RealtimeSocketData,
  SOCKET_AUTHENTICATOR,
  SocketAuthenticator,
  SocketCredentials,
} from '../../../src/realtime/socket-auth';

/** A unique deployment (QUEUE_NAME) per test file, so runs sharing one Redis never cross-talk. */
export const uniqueQueueName = (tag: string): string =>
  `test_rt_${tag}_${process.pid}_${randomBytes(4).toString('hex')}`;

/** Sets variables for the duration of a file; returns the restore function. */
export function setEnv(vars: Record<string, string>): () => void {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** ML_STATUS_READER fake: returns `snapshot`, counts reads. */
export class FakeStatusReader implements MlStatusReader {
  calls = 0;
  constructor(public snapshot: MlStatusSnapshot = { state: 'closed', available: true }) {}
  current(): Promise<MlStatusSnapshot> {
    this.calls++;
    return Promise.resolve({ ...this.snapshot });
  }
}

/**
 * SOCKET_AUTHENTICATOR for these tests (no database): the access token's signature and expiry only,
 * with JWT_SECRET. Sessions and API keys are the auth module's, tested with the real app
 * (test/integration/sessions.e2e-spec.ts).
 */
class SignatureOnlySocketAuthenticator implements SocketAuthenticator {
  private readonly jwt = new JwtService({
    secret: process.env.JWT_SECRET,
    verifyOptions: { algorithms: ['HS256'] },
  });
  async authenticate(credentials: SocketCredentials): Promise<RealtimeSocketData | null> {
    if (!('token' in credentials)) return null;
    try {
      const c = await this.jwt.verifyAsync<{
        sub?: unknown;
        email: string;
        role: 'user' | 'admin';
        exp?: number;
      }>(credentials.token);
      if (typeof c.sub !== 'number' || !Number.isSafeInteger(c.sub) || c.sub <= 0) return null;
      return {
        user: { sub: c.sub, email: c.email, role: c.role },
        exp: typeof c.exp === 'number' ? c.exp : undefined,
      };
    } catch {
      return null;
    }
  }
  onEnded(): void {
    // Nothing ends here: sessions and keys are the auth module's.
  }
}

@Module({})
class FakeSocketAuthModule {}
const fakeSocketAuthModule = (): DynamicModule => ({
  module: FakeSocketAuthModule,
  providers: [{ provide: SOCKET_AUTHENTICATOR, useClass: SignatureOnlySocketAuthenticator }],
  exports: [SOCKET_AUTHENTICATOR],
});

@Module({})
class FakeMlStatusModule {}
const fakeStatusModule = (reader: MlStatusReader): DynamicModule => ({
  module: FakeMlStatusModule,
  providers: [{ provide: ML_STATUS_READER, useValue: reader }],
  exports: [ML_STATUS_READER],
});

export interface RealtimeTestApp {
  app: NestFastifyApplication;
  publisher: RealtimePublisher;
  /** Base URL when the app listens (roles api/all). */
  url: string;
  close(): Promise<void>;
}

/**
 * A real Nest application on Fastify with config, Redis and RealtimeModule for `role`, reading
 * process.env now. Serving roles listen on a free port with the Redis IO adapter, installed either
 * by hand (`new RedisIoAdapter(app)` + `connectToRedis`) or through `useRealtimeAdapter(app)`; a
 * `worker` app is only initialised (no gateway, no HTTP listener).
 */
export async function startRealtimeApp(
  role: AppRole,
  opts: { reader?: MlStatusReader; install?: 'manual' | 'helper' } = {},
): Promise<RealtimeTestApp> {
  const serves = role !== 'worker';
  const realtime = serves
    ? RealtimeModule.forRole(role, {
        statusImports: [fakeStatusModule(opts.reader ?? new FakeStatusReader())],
        authImports: [fakeSocketAuthModule()],
      })
    : RealtimeModule.forRole(role);
  const ref = await Test.createTestingModule({
    imports: [AppConfigModule.forRoot(), RedisModule, realtime],
  }).compile();
  const app = ref.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: ['error'] });
  let url = '';
  if (serves) {
    if (opts.install === 'helper') {
      await useRealtimeAdapter(app);
    } else {
      const adapter = new RedisIoAdapter(app);
      await adapter.connectToRedis(
        app.get(RedisFactory),
        socketIoKey(process.env.QUEUE_NAME ?? 'segmentation'),
      );
      app.useWebSocketAdapter(adapter);
    }
    await app.listen(0, '127.0.0.1');
    const addr = app.getHttpServer().address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  } else {
    await app.init();
  }
  return { app, publisher: app.get(RealtimePublisher), url, close: () => app.close() };
}

export interface Received {
  event: string;
  payload: unknown;
}

/** A socket.io-client socket that records every event from the moment it is created. */
export interface TestClient {
  socket: ClientSocket;
  events: Received[];
  /** Events named `event`, in arrival order. */
  named(event: string): unknown[];
  disconnectReason?: string;
}

export function client(
  url: string,
  auth: Record<string, unknown> = {},
  extra: Parameters<typeof io>[1] = {},
): TestClient {
  const socket = io(url, {
    path: '/socket.io',
    auth,
    reconnection: false,
    forceNew: true,
    timeout: 5000,
    ...extra,
  });
  const c: TestClient = {
    socket,
    events: [],
    named: (event) => c.events.filter((e) => e.event === event).map((e) => e.payload),
  };
  socket.onAny((event: string, payload: unknown) => c.events.push({ event, payload }));
  socket.on('disconnect', (reason) => {
    c.disconnectReason = reason;
  });
  return c;
}

/** Resolves on `connect`, rejects with the connect_error. */
export function connected(c: TestClient): Promise<void> {
  if (c.socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    c.socket.once('connect', () => resolve());
    c.socket.once('connect_error', (err: Error) => reject(err));
  });
}

/** Resolves with the connect_error message, rejects if the socket connects instead. */
export function refused(c: TestClient): Promise<string> {
  return new Promise((resolve, reject) => {
    c.socket.once('connect', () => reject(new Error('connected although it should have been refused')));
    c.socket.once('connect_error', (err: Error) => resolve(err.message));
  });
}

/** Polls `cond` until true; fails with `what` after `timeoutMs` (generous: not a timing assertion). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Signs HS256 tokens like AuthService does (`extra` may set `exp`, or override claims). */
export function tokens(secret: string) {
  const jwt = new JwtService({ secret });
  return (sub: number, extra: Record<string, unknown> = {}, signSecret = secret): string =>
    jwt.sign(
      { sub, email: `u${sub}@example.org`, role: 'user', ...extra },
      { secret: signSecret, algorithm: 'HS256', ...('exp' in extra ? {} : { expiresIn: '1h' }) },
    );
}

/** Closes client sockets (idempotent). */
export function closeClients(clients: TestClient[]): void {
  for (const c of clients) c.socket.close();
  clients.length = 0;
}
