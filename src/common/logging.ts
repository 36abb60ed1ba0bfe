import { RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import type { IncomingMessage } from 'node:http';
import { appConfig } from '../config/configuration';
import type { ConfigType } from '@nestjs/config';

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

/** Structured JSON logs with request ids (honours an incoming X-Request-Id). */
export const LoggingModule = LoggerModule.forRootAsync({
  inject: [appConfig.KEY],
  useFactory: (app: ConfigType<typeof appConfig>) => ({
    forRoutes: [{ path: '{*path}', method: RequestMethod.ALL }],
    pinoHttp: {
      level: app.logLevel,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      customProps: () => ({ role: app.role }),
      // Probes and scrapes are not logged. (Under Fastify the middleware may see the URL relative to its
      // mount point; `originalUrl` keeps the full path.)
      autoLogging: {
        ignore: (req: IncomingMessage & { originalUrl?: string }) =>
          /^\/api\/(health|metrics)/.test(req.originalUrl ?? req.url ?? ''),
      },
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
      },
    },
  }),
});
