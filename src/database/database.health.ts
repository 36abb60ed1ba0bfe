import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { PoolStatsService } from './pool-stats.service';
import { withTimeout } from '../common/with-timeout';
import { HealthCheckable, HealthContributor, ServiceCheck } from '../health/health-contributor';

/** One round trip to the primary, bounded in time; details carry the pool statistics. */
@Injectable()
@HealthContributor({ service: 'database', critical: true, readiness: true })
export class DatabaseHealthIndicator implements HealthCheckable {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly pool: PoolStatsService,
  ) {}

  async check(timeoutMs = 900): Promise<ServiceCheck> {
    const started = performance.now();
    let up = true;
    let error: string | undefined;
    try {
      await withTimeout(this.ds.query('SELECT 1'), timeoutMs, 'database did not answer in time');
    } catch (err) {
      up = false;
      error = err instanceof Error && err.message.includes('in time') ? err.message : 'database unreachable';
    }
    const latencyMs = Math.round((performance.now() - started) * 100) / 100;
    return {
      up,
      details: {
        pool: this.pool.stats(),
        latencyMs,
        slowQueries: this.pool.slowQueryCount(),
        ...(error ? { error } : {}),
      },
    };
  }
}
