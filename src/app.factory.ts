import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import type { AppRole } from './config/app-role';
import { AllExceptionsFilter } from './common/http-exception.filter';
import { AppValidationPipe, useJsonBodyParser } from './common/input-rules';
import { ShutdownState } from './common/shutdown-state';
import { randomUUID } from 'node:crypto';
import { registerMultipartPassthrough } from './images/multipart-upload';
import { useRealtimeAdapter } from './realtime/redis-io.adapter';
import { mountQueueBoard } from './queue/board/queue-board';
import { useRouteBodyLimits } from './common/route-body-limits';
import { RESULT_EDIT_BODY_LIMIT } from './segmentation/result-versions.controller';

const JSON_BODY_LIMIT = 1024 * 1024;

export interface CreateAppOptions {
  role: AppRole;
  /** Keep Nest's own bootstrap logs (tests pass false). */
  logs?: boolean;
}

/** Builds (but does not start) the Nest application for a role on the Fastify adapter. */
export async function createApp(opts: CreateAppOptions): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: JSON_BODY_LIMIT,
    trustProxy: true,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // The export's `imageIds` query may list 10 000 ids (CONTRACT §3): ~110 KB of request line.
    http: { maxHeaderSize: 256 * 1024 },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRole(opts.role), adapter, {
    bufferLogs: true,
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  app.flushLogs();
  app.setGlobalPrefix('api');
  useJsonBodyParser(app, JSON_BODY_LIMIT);
  useRouteBodyLimits(app, [RESULT_EDIT_BODY_LIMIT]);

  // Every answer echoes its request id (the adapter's, above) as X-Request-Id; once shutdown has
  // begun, it also asks the client to reconnect elsewhere instead of reusing this connection. One hook
  // for both: each hook a request passes costs it a hook runner, and `onSend` runs for every answer,
  // errors and 404s included.
  const shutdown = app.get(ShutdownState);
  app
    .getHttpAdapter()
    .getInstance()
    // Callback style, not async: an async hook costs every response a promise and a microtask turn.
    .addHook('onSend', (req, reply, payload, done) => {
      void reply.header('x-request-id', req.id);
      if (shutdown.isShuttingDown) void reply.header('connection', 'close');
      done(null, payload);
    });

  if (opts.role !== 'worker') {
    registerMultipartPassthrough(app.getHttpAdapter().getInstance());
    setupSwagger(app);
    redirectRootToDocs(app);
    await mountQueueBoard(app);
    await useRealtimeAdapter(app);
  }

  app.useGlobalPipes(new AppValidationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());
  return app;
}

const DOCS_PATH = 'api/docs';

/** `GET /` (and HEAD) is where a person lands first: send them to the OpenAPI UI. */
function redirectRootToDocs(app: NestFastifyApplication): void {
  app
    .getHttpAdapter()
    .getInstance()
    .get('/', (_req, reply) => reply.redirect(`/${DOCS_PATH}`, 302));
}

function setupSwagger(app: INestApplication): void {
  const doc = new DocumentBuilder()
    .setTitle('Spheroseg backend')
    .setDescription(
      'Spheroid segmentation: images, asynchronous segmentation tasks, queue administration, health',
    )
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup(DOCS_PATH, app, () => SwaggerModule.createDocument(app, doc), {
    jsonDocumentUrl: 'api/docs/json',
  });
}
