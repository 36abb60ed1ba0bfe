import { Logger } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { ThrottlerStorageRecord } from '@nestjs/throttler/dist/throttler-storage-record.interface';
import { withTimeout } from '../common/with-timeout';

/**
 * Rate-limit storage that fails open: when Redis cannot count within `timeoutMs`, the request is let
 * through (and a warning logged at most every 10 s). A Redis outage must not turn every request into
 * an error: tasks are still accepted and recorded in PostgreSQL while Redis is away.
 */
export class FailOpenThrottlerStorage implements ThrottlerStorage {
  private readonly logger = new Logger('RateLimit');
  private lastWarn = 0;

  constructor(
    private readonly inner: ThrottlerStorage,
    private readonly timeoutMs = 250,
  ) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    name: string,
  ): Promise<ThrottlerStorageRecord> {
    try {
      return await withTimeout(
        this.inner.increment(key, ttl, limit, blockDuration, name),
        this.timeoutMs,
        'rate-limit store timed out',
      );
    } catch (err) {
      if (Date.now() - this.lastWarn > 10_000) {
        this.lastWarn = Date.now();
        this.logger.warn({ err: (err as Error).message }, 'rate limit not enforced: Redis unavailable');
      }
      return { totalHits: 0, timeToExpire: 0, isBlocked: false, timeToBlockExpire: 0 };
    }
  }
}
