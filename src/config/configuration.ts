import { registerAs } from '@nestjs/config';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { validateEnv } from './env.schema';

/** Typed, namespaced configuration. Inject with `@Inject(databaseConfig.KEY) cfg: ConfigType<typeof databaseConfig>`. */
const env = () => validateEnv(process.env);

const splitList = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export const appConfig = registerAs('app', () => {
  const e = env();
  return {
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    role: e.APP_ROLE,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    corsOrigins: splitList(e.CORS_ORIGINS),
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
  };
});

export const databaseConfig = registerAs('database', () => {
  const e = env();
  return {
    url: e.DATABASE_URL,
    replicaUrls: splitList(e.DATABASE_REPLICA_URLS),
    poolMax: e.DATABASE_POOL_MAX,
    idleTimeoutMs: e.DATABASE_POOL_IDLE_TIMEOUT,
    connectionTimeoutMs: e.DATABASE_POOL_CONNECTION_TIMEOUT,
    statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT,
    slowQueryMs: e.DATABASE_SLOW_QUERY_MS,
    migrationsRun: e.DATABASE_MIGRATIONS_RUN,
  };
});

export const redisConfig = registerAs('redis', () => {
  const e = env();
  return {
    url: e.REDIS_URL,
    clusterNodes: splitList(e.REDIS_CLUSTER_NODES),
    sentinels: splitList(e.REDIS_SENTINELS),
    sentinelName: e.REDIS_SENTINEL_NAME,
  };
});

export const queueConfig = registerAs('queue', () => {
  const e = env();
  return {
    enabled: e.ENABLE_QUEUE,
    name: e.QUEUE_NAME,
    concurrency: e.QUEUE_CONCURRENCY,
    priorityEnabled: e.QUEUE_PRIORITY_ENABLED,
    fairness: e.QUEUE_FAIRNESS,
    maxAttempts: e.QUEUE_MAX_ATTEMPTS,
    backoffDelayMs: e.QUEUE_BACKOFF_DELAY,
    lockDurationMs: e.QUEUE_LOCK_DURATION,
    stalledIntervalMs: e.QUEUE_STALLED_INTERVAL,
    writeWindowMs: e.QUEUE_WRITE_WINDOW_MS,
    maxPendingTasksPerUser: e.MAX_PENDING_TASKS_PER_USER,
    reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
    reconcileGraceMs: e.RECONCILE_GRACE_MS,
  };
});

export const mlConfig = registerAs('ml', () => {
  const e = env();
  return {
    url: e.ML_SERVICE_URL.replace(/\/+$/, ''),
    timeoutMs: e.ML_SERVICE_TIMEOUT,
    errorThresholdPercentage: e.ML_BREAKER_ERROR_THRESHOLD,
    volumeThreshold: e.ML_BREAKER_VOLUME_THRESHOLD,
    resetTimeoutMs: e.ML_BREAKER_RESET_TIMEOUT,
  };
});

export const uploadsConfig = registerAs('uploads', () => {
  const e = env();
  return {
    dir: path.resolve(e.UPLOAD_DIR),
    maxBytes: e.MAX_UPLOAD_BYTES,
    maxPixels: e.MAX_IMAGE_PIXELS,
  };
});

/** Where images and their variants are kept (CONTRACT §9, src/storage). Secrets stay inside this object. */
export const storageConfig = registerAs('storage', () => {
  const e = env();
  const prefix = e.S3_PREFIX.replace(/^\/+/, '');
  return {
    driver: e.STORAGE_DRIVER,
    uploadDir: path.resolve(e.UPLOAD_DIR),
    s3: {
      endpoint: e.S3_ENDPOINT || undefined,
      region: e.S3_REGION,
      bucket: e.S3_BUCKET ?? '',
      accessKeyId: e.S3_ACCESS_KEY_ID || undefined,
      secretAccessKey: e.S3_SECRET_ACCESS_KEY || undefined,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      /** Key prefix, ending with `/` when set. */
      prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`,
    },
    /** A presigned `image_url` must outlive the ML call it is sent with (CONTRACT §9). */
    mlTimeoutMs: e.ML_SERVICE_TIMEOUT,
  };
});

/** The image variants and their signed links (src/media). */
export const mediaConfig = registerAs('media', () => {
  const e = env();
  return {
    /** Lifetime of the signed links in `image.urls` (seconds). */
    fileUrlTtlSeconds: e.FILE_URL_TTL_SECONDS,
  };
});

// Outside production a random key per boot is used when none is given: tokens then do not survive a
// restart nor work across processes, which is why production requires JWT_SECRET.
let ephemeralSecret: string | undefined;
export const authConfig = registerAs('auth', () => {
  const e = env();
  ephemeralSecret ??= randomBytes(32).toString('hex');
  return {
    jwtSecret: e.JWT_SECRET ?? ephemeralSecret,
    /** Access token lifetime in seconds (JWT_EXPIRES_IN: `900`, `15m`, `1h`, `1d`). */
    accessTokenTtlSeconds: durationSeconds(e.JWT_EXPIRES_IN),
    /** A session ends this long after its login, refreshed or not. */
    refreshTokenTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
    adminEmail: e.ADMIN_EMAIL || undefined,
    adminPassword: e.ADMIN_PASSWORD || undefined,
  };
});

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
/** `900` → 900, `15m` → 900, `1h` → 3600, `1d` → 86400 (the syntax env.schema.ts accepts). */
export function durationSeconds(v: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(v);
  if (!m) throw new Error('invalid duration');
  return Number(m[1]) * (UNIT_SECONDS[m[2]] ?? 1);
}

export const allConfigs = [
  appConfig,
  databaseConfig,
  redisConfig,
  queueConfig,
  mlConfig,
  uploadsConfig,
  authConfig,
  mediaConfig,
  storageConfig,
];
