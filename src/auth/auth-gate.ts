import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { randomBytes } from 'node:crypto';
import { queueConfig } from '../config/configuration';
import { RedisClient, RedisFactory } from '../redis/redis.factory';
import { withTimeout } from '../common/with-timeout';

/** Rate-limit window (fixed, per user or IP): RATE_LIMIT_PER_MINUTE per minute. */
export const RATE_WINDOW_MS = 60_000;
/** A version key lives this long without change; when it expires, caches simply reload once. */
const VERSION_TTL_S = 24 * 3600;

/**
 * One Redis round trip per request (a Lua script, atomic, so exact across every process):
 *  - counts the hit in the caller's fixed window (INCR, PEXPIRE on the first hit) unless `limit` < 0;
 *  - for a user, returns the user's version: a random token that every change of the user (role,
 *    premium, deletion) replaces, and that the script creates when it is missing (a Redis restart or
 *    expiry thus reads as "changed", never as "unchanged"). The auth guard keeps the user row cached
 *    next to the version it was read under and reloads it from PostgreSQL when the version differs.
 * The keys of one tracker share a hash tag, so the script also runs on Redis Cluster.
 */
const GATE_SCRIPT = `
local hits = 0
local ttl = 0
if tonumber(ARGV[1]) >= 0 then
  hits = redis.call('INCR', KEYS[1])
  if hits == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  else
    ttl = redis.call('PTTL', KEYS[1])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
      ttl = tonumber(ARGV[2])
    end
  end
end
local ver = false
if #KEYS > 1 then
  ver = redis.call('GET', KEYS[2])
  if not ver then
    ver = ARGV[3]
    redis.call('SET', KEYS[2], ver, 'EX', ARGV[4])
  end
end
return { hits, ttl, ver }
`;

export interface GateAnswer {
  /** Hits in the current window including this one (0 when not counted). */
  hits: number;
  /** Milliseconds until the window resets. */
  resetMs: number;
  /** The user's current version token (users only). */
  version: string | null;
}

type GateClient = RedisClient & {
  spherosegGate(...args: Array<string | number>): Promise<[number, number, string | null]>;
};

/** Shared, exact rate limit and cross-process user versions, in one Redis round trip per request. */
@Injectable()
export class AuthGate {
  private readonly logger = new Logger('RateLimit');
  private readonly redis: GateClient;
  private lastWarn = 0;

  constructor(redis: RedisFactory, @Inject(queueConfig.KEY) q: ConfigType<typeof queueConfig>) {
    // Auto-pipelining: the gate calls of concurrent requests share one write to Redis.
    this.redis = redis.create('auth-gate', {
      keyPrefix: `${q.name}:rl:`,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
    }) as GateClient;
    this.redis.defineCommand('spherosegGate', { lua: GATE_SCRIPT });
  }

  /**
   * Counts a request of `tracker` (`user:<id>` or `ip:<addr>`) unless `limit` is negative, and
   * returns the user's version when `userId` is given. Null when Redis cannot answer within
   * `timeoutMs` (the caller then lets the request through and reads the user from PostgreSQL).
   */
  async pass(tracker: string, limit: number, userId?: number, timeoutMs = 250): Promise<GateAnswer | null> {
    const tag = `{${tracker}}`;
    const keys = userId === undefined ? [`${tag}:hits`] : [`${tag}:hits`, `{user:${userId}}:ver`];
    // A user's hits and version share the tag `{user:<id>}` (same cluster slot).
    if (userId !== undefined && tracker !== `user:${userId}`) throw new Error('a user gate counts the user');
    try {
      const [hits, resetMs, version] = await withTimeout(
        this.redis.spherosegGate(
          keys.length,
          ...keys,
          limit < 0 ? -1 : limit,
          RATE_WINDOW_MS,
          newVersion(),
          VERSION_TTL_S,
        ),
        timeoutMs,
        'rate-limit store timed out',
      );
      return { hits, resetMs, version: version ?? null };
    } catch (err) {
      if (Date.now() - this.lastWarn > 10_000) {
        this.lastWarn = Date.now();
        this.logger.warn(
          { err: (err as Error).message },
          'rate limit not enforced and user cache bypassed: Redis unavailable',
        );
      }
      return null;
    }
  }

  /**
   * Gives `userId` a new version: every process reloads that user on its next request. Called after
   * the change is committed in PostgreSQL; retried, since a lost bump would leave other processes
   * with the old row until its version key expires.
   */
  async bumpUser(userId: number): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await withTimeout(
          this.redis.set(`{user:${userId}}:ver`, newVersion(), 'EX', VERSION_TTL_S),
          1000,
          'version bump timed out',
        );
        return true;
      } catch (err) {
        if (attempt === 2)
          this.logger.error(
            { userId, err: (err as Error).message },
            'user version not bumped: other processes may serve a stale user',
          );
      }
    }
    return false;
  }
}

/** Unique across processes (a random prefix per process) without random bytes per request. */
const PROCESS_TAG = randomBytes(6).toString('base64url');
let versionSeq = 0;
const newVersion = () => `${PROCESS_TAG}.${(versionSeq++).toString(36)}`;
