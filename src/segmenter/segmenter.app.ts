import { ConsoleLogger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SegmenterExceptionFilter } from './segmenter-exception.filter';
import { SegmenterModule } from './segmenter.module';

/** Builds the segmenter application (Fastify, JSON logs, `{ success: false, error }` errors); the caller listens. */
export async function createSegmenterApp(): Promise<NestFastifyApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(SegmenterModule, new FastifyAdapter(), {
    logger: new ConsoleLogger({ json: true, colors: false }),
  });
  app.useGlobalFilters(new SegmenterExceptionFilter());
  return app;
}
