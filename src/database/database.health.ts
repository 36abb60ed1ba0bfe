import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { PoolStatsService, PoolStats } from './pool-stats.service';
import { withTimeout } from '../common/with-timeout';

export interface DatabaseProbe {
  up: boolean;
  latencyMs: number;
  error?: string;
  details: { pool: PoolStats; latencyMs: number; slowQueries: number };
}

/** One round trip to the primary, bounded in time. */
@Injectable()
export class DatabaseHealthIndicator {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly pool: PoolStatsService,
  ) {}

  async probe(timeoutMs = 900): Promise<DatabaseProbe> {
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
      latencyMs,
      error,
      details: { pool: this.pool.stats(), latencyMs, slowQueries: this.pool.slowQueryCount() },
    };
  }
}
