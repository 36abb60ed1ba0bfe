import { HttpStatus, INestApplication, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import multipart from '@fastify/multipart';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import type { AppRole } from './config/app-role';
import { AllExceptionsFilter } from './common/http-exception.filter';
import { ShutdownState } from './common/shutdown-state';
import { randomUUID } from 'node:crypto';
import { uploadsConfig } from './config/configuration';
import { useRealtimeAdapter } from './realtime/redis-io.adapter';
import { mountQueueBoard } from './queue/board/queue-board';

export interface CreateAppOptions {
  role: AppRole;
  /** Keep Nest's own bootstrap logs (tests pass false). */
  logs?: boolean;
}

/** Builds (but does not start) the Nest application for a role on the Fastify adapter. */
export async function createApp(opts: CreateAppOptions): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: 1024 * 1024,
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

  // Once shutdown has begun, ask clients to reconnect elsewhere instead of reusing this connection.
  const shutdown = app.get(ShutdownState);
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onSend', async (_req, reply) => {
      if (shutdown.isShuttingDown) void reply.header('connection', 'close');
    });

  if (opts.role !== 'worker') {
    const uploads = app.get<{ maxBytes: number }>(uploadsConfig.KEY);
    await app.register(multipart as never, { limits: { fileSize: uploads.maxBytes, files: 1, fields: 5, parts: 6 } });
    setupSwagger(app);
    await mountQueueBoard(app);
    await useRealtimeAdapter(app);
  }

  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      errorHttpStatusCode: HttpStatus.BAD_REQUEST,
    }),
  );
  app.useGlobalFilters(new AllExceptionsFilter());
  return app;
}

function setupSwagger(app: INestApplication): void {
  const doc = new DocumentBuilder()
    .setTitle('Spheroseg backend')
    .setDescription('Spheroid segmentation: images, asynchronous segmentation tasks, queue administration, health')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('api/docs', app, () => SwaggerModule.createDocument(app, doc), {
    jsonDocumentUrl: 'api/docs/json',
  });
}
