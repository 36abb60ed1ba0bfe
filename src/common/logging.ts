import { Injectable, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ConfigType } from '@nestjs/config';
import { LoggerModule, PinoLogger } from 'nestjs-pino';
import { storage, Store } from 'nestjs-pino/storage';
import pino, { Logger as Pino } from 'pino';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { appConfig } from '../config/configuration';

/** Paths redacted from every log line: credentials, tokens, cookies. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.passwordHash',
  '*.accessToken',
  '*.token',
  '*.secret',
  '*.connectionString',
];

/** Probes and scrapes are not logged. */
const UNLOGGED = /^\/api\/(health|metrics)(\/|\?|$)/;

/**
 * The process's root pino logger. JSON lines on stdout, written asynchronously in 4 KiB batches
 * (flushed every 200 ms and on exit) so that a log line does not cost a write(2) of its own; in
 * development (NODE_ENV=development, the default of `npm run start:dev`) readable lines through
 * pino-pretty instead.
 */
export function createRootLogger(app: Pick<ConfigType<typeof appConfig>, 'logLevel' | 'role' | 'nodeEnv'>): Pino {
  const options: pino.LoggerOptions = {
    level: app.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid, role: app.role },
  };
  if (app.nodeEnv === 'development') {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => dest.flush(), 200).unref();
  return pino(options, dest);
}

/**
 * One line per finished request (`request completed`: request id, method, path without its query
 * string, status, response time), written from Fastify's own `onResponse` hook with the root logger:
 * no Express middleware and no child logger per request. The request id is Fastify's (an incoming
 * `X-Request-Id`, else a UUID), sent back as `X-Request-Id`. Other log lines written while a request
 * is handled carry `req.id` too (a child logger made only when something logs).
 */
@Injectable()
export class RequestLogging implements OnModuleInit {
  constructor(private readonly host: HttpAdapterHost) {}

  onModuleInit(): void {
    const fastify = this.host.httpAdapter?.getInstance?.() as FastifyInstance | undefined;
    if (!fastify || typeof fastify.addHook !== 'function') return;
    const root = PinoLogger.root;
    fastify.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
      void reply.header('x-request-id', req.id);
      storage.enterWith(lazyStore(root, req.id));
      done();
    });
    fastify.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
      const url = req.url;
      if (!UNLOGGED.test(url)) {
        const status = reply.statusCode;
        const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
        if (root.isLevelEnabled(level)) {
          const q = url.indexOf('?');
          root[level](
            {
              req: { id: req.id, method: req.method, url: q >= 0 ? url.slice(0, q) : url },
              res: { statusCode: status },
              responseTime: Math.round(reply.elapsedTime * 10) / 10,
            },
            'request completed',
          );
        }
      }
      done();
    });
  }
}

/** A nestjs-pino store whose child logger (bound to the request id) is made on first use only. */
function lazyStore(root: Pino, id: unknown): Store {
  let child: Pino | undefined;
  const store = Object.create(Store.prototype) as Store;
  Object.defineProperty(store, 'logger', {
    get: () => (child ??= root.child({ req: { id } })),
    set: (l: Pino) => (child = l),
    enumerable: true,
  });
  return store;
}

/**
 * Structured logs: nestjs-pino's Nest logger over the root logger (no per-request middleware:
 * `forRoutes: []`), plus the request log hooks above.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [appConfig.KEY],
      useFactory: (app: ConfigType<typeof appConfig>) => ({
        forRoutes: [],
        pinoHttp: { logger: createRootLogger(app) },
      }),
    }),
  ],
  providers: [RequestLogging],
})
export class LoggingModule {}
