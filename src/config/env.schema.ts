import * as Joi from 'joi';
import { APP_ROLES, type AppRole } from './app-role';
import { ConfigValidationError, validateWithSchema } from './validate';
import { isEmailAddress } from '../common/email';

export { ConfigValidationError };

/** Every environment variable of CONTRACT §2, validated once at start-up. */
export const envSchema = Joi.object({
  NODE_ENV: Joi.string().valid('development', 'production', 'test').default('development'),
  PORT: Joi.number().integer().min(0).max(65535).default(5001),
  APP_ROLE: Joi.string()
    .valid(...APP_ROLES)
    .default('all'),
  LOG_LEVEL: Joi.string().valid('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent').default('info'),

  DATABASE_URL: Joi.string()
    .uri({ scheme: ['postgres', 'postgresql'] })
    .default('postgresql://postgres@localhost:5432/spheroseg'),
  DATABASE_REPLICA_URLS: Joi.string().allow('').default(''),
  DATABASE_POOL_MAX: Joi.number().integer().min(1).max(1000).default(20),
  DATABASE_POOL_IDLE_TIMEOUT: Joi.number().integer().min(0).default(30000),
  DATABASE_POOL_CONNECTION_TIMEOUT: Joi.number().integer().min(1).default(2000),
  DATABASE_STATEMENT_TIMEOUT: Joi.number().integer().min(0).default(30000),
  DATABASE_SLOW_QUERY_MS: Joi.number().integer().min(0).default(500),
  DATABASE_MIGRATIONS_RUN: Joi.boolean().truthy('1').falsy('0').default(true),

  REDIS_URL: Joi.string()
    .uri({ scheme: ['redis', 'rediss'] })
    .default('redis://localhost:6379'),
  REDIS_CLUSTER_NODES: Joi.string().allow('').default(''),
  REDIS_SENTINELS: Joi.string().allow('').default(''),
  REDIS_SENTINEL_NAME: Joi.string().allow('').default(''),

  QUEUE_NAME: Joi.string()
    .pattern(/^[A-Za-z0-9_.-]+$/)
    .default('segmentation'),
  QUEUE_CONCURRENCY: Joi.number().integer().min(1).max(1000).default(5),
  QUEUE_PRIORITY_ENABLED: Joi.boolean().truthy('1').falsy('0').default(true),
  QUEUE_FAIRNESS: Joi.string().valid('user', 'none').default('user'),
  QUEUE_MAX_ATTEMPTS: Joi.number().integer().min(1).max(100).default(3),
  QUEUE_BACKOFF_DELAY: Joi.number().integer().min(0).default(2000),
  QUEUE_LOCK_DURATION: Joi.number().integer().min(1000).default(30000),
  QUEUE_STALLED_INTERVAL: Joi.number().integer().min(1000).default(30000),
  QUEUE_WRITE_WINDOW_MS: Joi.number().integer().min(0).max(1000).default(10),
  RECONCILE_INTERVAL_MS: Joi.number().integer().min(0).default(30000),
  RECONCILE_GRACE_MS: Joi.number().integer().min(0).default(15000),
  MAX_PENDING_TASKS_PER_USER: Joi.number().integer().min(1).default(1000),
  RATE_LIMIT_PER_MINUTE: Joi.number().integer().min(1).default(600),
  ENABLE_QUEUE: Joi.boolean().truthy('1').falsy('0').default(true),

  ML_SERVICE_URL: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .default('http://localhost:5002'),
  ML_SERVICE_TIMEOUT: Joi.number().integer().min(1).default(300000),
  ML_BREAKER_ERROR_THRESHOLD: Joi.number().min(1).max(100).default(50),
  ML_BREAKER_VOLUME_THRESHOLD: Joi.number().integer().min(0).default(5),
  ML_BREAKER_RESET_TIMEOUT: Joi.number().integer().min(1).default(60000),

  UPLOAD_DIR: Joi.string().default('./uploads'),
  MAX_UPLOAD_BYTES: Joi.number().integer().min(1).default(52428800),
  MAX_IMAGE_PIXELS: Joi.number().integer().min(1).default(100_000_000),
  FILE_URL_TTL_SECONDS: Joi.number().integer().min(1).max(31_536_000).default(3600),

  STORAGE_DRIVER: Joi.string().valid('local', 's3').default('local'),
  S3_ENDPOINT: Joi.string()
    .uri({ scheme: ['http', 'https'] })
    .allow(''),
  S3_REGION: Joi.string().default('us-east-1'),
  S3_BUCKET: Joi.string()
    .pattern(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
    .when('STORAGE_DRIVER', { is: 's3', then: Joi.required(), otherwise: Joi.optional().allow('') }),
  S3_ACCESS_KEY_ID: Joi.string().allow(''),
  S3_SECRET_ACCESS_KEY: Joi.string().allow(''),
  S3_FORCE_PATH_STYLE: Joi.boolean().truthy('1').falsy('0').default(true),
  S3_PREFIX: Joi.string()
    .pattern(/^[A-Za-z0-9!_.*'()/-]{0,200}$/)
    .allow('')
    .default(''),

  JWT_SECRET: Joi.string().min(16).when('NODE_ENV', {
    is: 'production',
    then: Joi.required(),
    otherwise: Joi.optional(),
  }),
  // Seconds, or a number with a unit (s, m, h, d): `900`, `15m`, `1h`, `1d`. At least one second.
  JWT_EXPIRES_IN: Joi.string()
    .pattern(/^0*[1-9]\d{0,8}[smhd]?$/)
    .message('must be seconds or a number with s, m, h or d (900, 15m, 1h, 1d), at least one second')
    .default('15m'),
  REFRESH_TOKEN_TTL_DAYS: Joi.number().integer().min(1).max(3650).default(30),
  // The rule registration uses (syntax only, no TLD list): any address a user can register with works here.
  ADMIN_EMAIL: Joi.string()
    .allow('')
    .custom((v: string, helpers) => (v === '' || isEmailAddress(v) ? v : helpers.error('string.email'))),
  ADMIN_PASSWORD: Joi.string().min(8).allow(''),
  CORS_ORIGINS: Joi.string().allow('').default(''),

  SHUTDOWN_TIMEOUT: Joi.number().integer().min(0).default(30000),
  SHUTDOWN_DRAIN_DELAY: Joi.number().integer().min(0).default(1000),
}).unknown(true);

export type Env = {
  NODE_ENV: 'development' | 'production' | 'test';
  PORT: number;
  APP_ROLE: AppRole;
  LOG_LEVEL: string;
  DATABASE_URL: string;
  DATABASE_REPLICA_URLS: string;
  DATABASE_POOL_MAX: number;
  DATABASE_POOL_IDLE_TIMEOUT: number;
  DATABASE_POOL_CONNECTION_TIMEOUT: number;
  DATABASE_STATEMENT_TIMEOUT: number;
  DATABASE_SLOW_QUERY_MS: number;
  DATABASE_MIGRATIONS_RUN: boolean;
  REDIS_URL: string;
  REDIS_CLUSTER_NODES: string;
  REDIS_SENTINELS: string;
  REDIS_SENTINEL_NAME: string;
  QUEUE_NAME: string;
  QUEUE_CONCURRENCY: number;
  QUEUE_PRIORITY_ENABLED: boolean;
  QUEUE_FAIRNESS: 'user' | 'none';
  QUEUE_MAX_ATTEMPTS: number;
  QUEUE_BACKOFF_DELAY: number;
  QUEUE_LOCK_DURATION: number;
  QUEUE_STALLED_INTERVAL: number;
  QUEUE_WRITE_WINDOW_MS: number;
  RECONCILE_INTERVAL_MS: number;
  RECONCILE_GRACE_MS: number;
  MAX_PENDING_TASKS_PER_USER: number;
  RATE_LIMIT_PER_MINUTE: number;
  ENABLE_QUEUE: boolean;
  ML_SERVICE_URL: string;
  ML_SERVICE_TIMEOUT: number;
  ML_BREAKER_ERROR_THRESHOLD: number;
  ML_BREAKER_VOLUME_THRESHOLD: number;
  ML_BREAKER_RESET_TIMEOUT: number;
  UPLOAD_DIR: string;
  MAX_UPLOAD_BYTES: number;
  MAX_IMAGE_PIXELS: number;
  FILE_URL_TTL_SECONDS: number;
  STORAGE_DRIVER: 'local' | 's3';
  S3_ENDPOINT?: string;
  S3_REGION: string;
  S3_BUCKET?: string;
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
  S3_FORCE_PATH_STYLE: boolean;
  S3_PREFIX: string;
  JWT_SECRET?: string;
  JWT_EXPIRES_IN: string;
  REFRESH_TOKEN_TTL_DAYS: number;
  ADMIN_EMAIL?: string;
  ADMIN_PASSWORD?: string;
  CORS_ORIGINS: string;
  SHUTDOWN_TIMEOUT: number;
  SHUTDOWN_DRAIN_DELAY: number;
};

/**
 * Validates the backend's environment. Throws a ConfigValidationError whose message is one line naming
 * the variable and what is wrong; the offending value is never echoed (it may be a secret).
 */
export function validateEnv(raw: Record<string, unknown>): Env {
  return validateWithSchema<Env>(envSchema, raw);
}
