import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { once } from 'node:events';
import { withTimeout } from '../common/with-timeout';
import { HealthCheckable, HealthContributor, ServiceCheck } from '../health/health-contributor';
import { RedisClient, RedisFactory } from './redis.factory';

/** PING on a dedicated connection that fails fast (no offline queue), bounded in time. */
@Injectable()
@HealthContributor({ service: 'redis', critical: true, readiness: true })
export class RedisHealthIndicator implements HealthCheckable, OnModuleInit, OnModuleDestroy {
  private client?: RedisClient;

  constructor(private readonly factory: RedisFactory) {}

  onModuleInit(): void {
    this.client = this.factory.create('health', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 900,
      retryStrategy: (times) => Math.min(times * 200, 1000),
    });
  }

  async check(timeoutMs = 900): Promise<ServiceCheck> {
    const client = this.client!;
    const started = performance.now();
    try {
      const ping = async () => {
        if (client.status !== 'ready') await once(client, 'ready');
        return client.ping();
      };
      await withTimeout(ping(), timeoutMs, 'redis did not answer in time');
      return { up: true, details: { latencyMs: round(performance.now() - started) } };
    } catch (err) {
      const error = err instanceof Error && err.message.includes('in time') ? err.message : 'redis unreachable';
      return { up: false, details: { latencyMs: round(performance.now() - started), error } };
    }
  }

  onModuleDestroy(): void {
    this.client?.disconnect();
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100;
