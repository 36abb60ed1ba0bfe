import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { SegmenterEnv } from './segmenter.config';
import { SegmenterExceptionFilter } from './segmenter-exception.filter';
import { SegmenterModule } from './segmenter.module';

/** Nest's levels at or above each LOG_LEVEL (pino names, as the backend uses). */
const NEST_LEVELS: Record<SegmenterEnv['LOG_LEVEL'], LogLevel[]> = {
  trace: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug'],
  info: ['fatal', 'error', 'warn', 'log'],
  warn: ['fatal', 'error', 'warn'],
  error: ['fatal', 'error'],
  fatal: ['fatal'],
  silent: [],
};

/** Builds the segmenter application (Fastify, JSON logs, `{ success: false, error }` errors); the caller listens. */
export async function createSegmenterApp(
  logLevel: SegmenterEnv['LOG_LEVEL'] = 'info',
): Promise<NestFastifyApplication> {
  const levels = NEST_LEVELS[logLevel];
  const app = await NestFactory.create<NestFastifyApplication>(SegmenterModule, new FastifyAdapter(), {
    logger: levels.length > 0 ? new ConsoleLogger({ json: true, colors: false, logLevels: levels }) : false,
  });
  app.useGlobalFilters(new SegmenterExceptionFilter());
  return app;
}
