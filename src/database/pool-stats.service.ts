import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';
import { databaseConfig } from '../config/configuration';

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
  max: number;
}

/** Live statistics of the primary's pg pool (and replicas'), and access to the raw pools. */
@Injectable()
export class PoolStatsService {
  private slowQueries = 0;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(databaseConfig.KEY) private readonly cfg: ConfigType<typeof databaseConfig>,
  ) {}

  primaryPool(): Pool | undefined {
    return (this.ds.driver as PostgresDriver).master as Pool | undefined;
  }

  replicaPools(): Pool[] {
    return ((this.ds.driver as PostgresDriver).slaves ?? []) as Pool[];
  }

  stats(): PoolStats {
    const p = this.primaryPool();
    return {
      total: p?.totalCount ?? 0,
      idle: p?.idleCount ?? 0,
      waiting: p?.waitingCount ?? 0,
      max: this.cfg.poolMax,
    };
  }

  recordSlowQuery(): void {
    this.slowQueries++;
  }

  slowQueryCount(): number {
    return this.slowQueries;
  }
}
