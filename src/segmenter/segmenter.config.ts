import { registerAs } from '@nestjs/config';
import * as Joi from 'joi';
import * as path from 'node:path';
import { validateWithSchema } from '../config/validate';
import { parseAllowlist } from './image-url';

/**
 * The reference segmenter's own configuration (CONTRACT §1): it reads only these variables and needs
 * nothing of the backend's (no JWT_SECRET, database or Redis), in production too.
 */
export const segmenterEnvSchema = Joi.object({
  NODE_ENV: Joi.string().valid('development', 'production', 'test').default('development'),
  LOG_LEVEL: Joi.string().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),
  SEGMENTER_PORT: Joi.number().integer().min(0).max(65535).default(5002),
  SEGMENTER_THREADS: Joi.number().integer().min(0).default(0),
  UPLOAD_DIR: Joi.string().default('./uploads'),
  MAX_IMAGE_PIXELS: Joi.number().integer().min(1).default(100_000_000),
  SHUTDOWN_TIMEOUT: Joi.number().integer().min(0).default(30000),
  SEGMENTER_URL_ALLOWLIST: Joi.string()
    .allow('')
    .default('')
    .custom((v: string, helpers) => {
      try {
        parseAllowlist(v);
        return v;
      } catch {
        return helpers.error('string.uri');
      }
    }),
  SEGMENTER_MAX_FETCH_BYTES: Joi.number().integer().min(1).default(52428800),
  SEGMENTER_FETCH_TIMEOUT: Joi.number().integer().min(1).default(60000),
}).unknown(true);

export interface SegmenterEnv {
  NODE_ENV: 'development' | 'production' | 'test';
  LOG_LEVEL: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  SEGMENTER_PORT: number;
  SEGMENTER_THREADS: number;
  UPLOAD_DIR: string;
  MAX_IMAGE_PIXELS: number;
  SHUTDOWN_TIMEOUT: number;
  SEGMENTER_URL_ALLOWLIST: string;
  SEGMENTER_MAX_FETCH_BYTES: number;
  SEGMENTER_FETCH_TIMEOUT: number;
}

/** Throws ConfigValidationError (one line, no value echoed) when a segmenter variable is invalid. */
export function validateSegmenterEnv(raw: Record<string, unknown>): SegmenterEnv {
  return validateWithSchema<SegmenterEnv>(segmenterEnvSchema, raw);
}

/** Typed namespace injected with `@Inject(segmenterConfig.KEY)`. */
export const segmenterConfig = registerAs('segmenter', () => {
  const e = validateSegmenterEnv(process.env);
  return {
    port: e.SEGMENTER_PORT,
    uploadDir: path.resolve(e.UPLOAD_DIR),
    maxPixels: e.MAX_IMAGE_PIXELS,
    threads: e.SEGMENTER_THREADS,
    logLevel: e.LOG_LEVEL,
    /** Origins `image_url` may be fetched from (CONTRACT §9); empty: no URL is fetched. */
    urlAllowlist: parseAllowlist(e.SEGMENTER_URL_ALLOWLIST),
    maxFetchBytes: e.SEGMENTER_MAX_FETCH_BYTES,
    fetchTimeoutMs: e.SEGMENTER_FETCH_TIMEOUT,
  };
});
