import { Inject, Injectable, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { ConfigType } from '@nestjs/config';
import { LoggerModule } from 'nestjs-pino';
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
  '*.refreshToken',
  '*.apiKey',
  '*.currentPassword',
  '*.newPassword',
  '*.token',
  '*.secret',
  '*.connectionString',
];

const LOGGERS = Symbol('LOGGERS');
const REQUEST_LOGGER = Symbol('REQUEST_LOGGER');
const made = new Map<string, { root: Pino; requests: Pino }>();
/** One pair of loggers per configuration and process (LoggerModule's scope and ours both ask for it). */
const LOGGERS_PROVIDER = {
  provide: LOGGERS,
  inject: [appConfig.KEY],
  useFactory: (app: ConfigType<typeof appConfig>) => {
    const key = `${app.logLevel}|${app.role}|${app.nodeEnv}`;
    let l = made.get(key);
    if (!l) made.set(key, (l = createLoggers(app)));
    return l;
  },
};

/** Probes and scrapes are not logged. */
const UNLOGGED = /^\/api\/(health|metrics)(\/|\?|$)/;

/**
 * The process's root pino logger. JSON lines on stdout, written asynchronously in 4 KiB batches
 * (flushed every 200 ms and on exit) so that a log line does not cost a write(2) of its own; in
 * development (NODE_ENV=development, the default of `npm run start:dev`) readable lines through
 * pino-pretty instead.
 */
export function createRootLogger(app: Pick<ConfigType<typeof appConfig>, 'logLevel' | 'role' | 'nodeEnv'>): Pino {
  return createLoggers(app).root;
}

/**
 * The root logger (redacting REDACT_PATHS) and, on the same destination, the request-line logger:
 * request lines are built here from a fixed set of fields that never hold a secret (the path is
 * logged without its query string), so they skip the redaction pass (about half the cost of a line).
 */
export function createLoggers(app: Pick<ConfigType<typeof appConfig>, 'logLevel' | 'role' | 'nodeEnv'>): { root: Pino; requests: Pino } {
  const base: pino.LoggerOptions = { level: app.logLevel, base: { pid: process.pid, role: app.role } };
  const redact = { paths: REDACT_PATHS, censor: '[redacted]' };
  if (app.nodeEnv === 'development') {
    const root = pino({
      ...base,
      redact,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
    return { root, requests: root };
  }
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => dest.flush(), 200).unref();
  return { root: pino({ ...base, redact }, dest), requests: pino(base, dest) };
}

/**
 * One line per finished request (`request completed`: request id, method, path without its query
 * string, status, response time), written from Fastify's own `onResponse` hook with the root logger:
 * no Express middleware and no child logger per request. The request id is Fastify's (an incoming
 * `X-Request-Id`, else a UUID), sent back as `X-Request-Id` by the app's `onSend` hook (app.factory).
 * No AsyncLocalStorage per request (its promise hooks cost every request a few per cent): other lines
 * logged during a request do not carry its id by themselves.
 */
@Injectable()
export class RequestLogging implements OnModuleInit {
  constructor(
    private readonly host: HttpAdapterHost,
    @Inject(REQUEST_LOGGER) private readonly root: Pino,
  ) {}

  onModuleInit(): void {
    const fastify = this.host.httpAdapter?.getInstance?.() as FastifyInstance | undefined;
    if (!fastify || typeof fastify.addHook !== 'function') return;
    const root = this.root;
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

/**
 * Structured logs: nestjs-pino's Nest logger over the root logger (no per-request middleware:
 * `forRoutes: []`), plus the request log hooks above.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [LOGGERS],
      providers: [LOGGERS_PROVIDER],
      useFactory: (loggers: { root: Pino }) => ({ forRoutes: [], pinoHttp: { logger: loggers.root } }),
    }),
  ],
  providers: [
    LOGGERS_PROVIDER,
    { provide: REQUEST_LOGGER, inject: [LOGGERS], useFactory: (l: { requests: Pino }) => l.requests },
    RequestLogging,
  ],
})
export class LoggingModule {}
