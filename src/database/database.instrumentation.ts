import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Pool, PoolClient } from 'pg';
import { DataSource, type EntitySubscriberInterface } from 'typeorm';
import type { AfterQueryEvent } from 'typeorm/subscriber/event/QueryEvent';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';
import { databaseConfig } from '../config/configuration';
import { MetricsService } from '../metrics/metrics.service';
import { PoolStatsService } from './pool-stats.service';

type ConnectCb = (err: Error | undefined, client: PoolClient | undefined, release: (e?: unknown) => void) => void;

/**
 * Measures the pool (acquire wait, connections by state), every query (duration, slow-query log and
 * count) and makes lag-tolerant reads fall back to the primary when a replica is unreachable.
 */
@Injectable()
export class DatabaseInstrumentation implements OnModuleInit {
  private readonly logger = new Logger('Database');

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(databaseConfig.KEY) private readonly cfg: ConfigType<typeof databaseConfig>,
    private readonly metrics: MetricsService,
    private readonly poolStats: PoolStatsService,
  ) {}

  onModuleInit(): void {
    const driver = this.ds.driver as PostgresDriver;
    for (const pool of [driver.master as Pool, ...((driver.slaves ?? []) as Pool[])]) {
      if (pool) this.timeAcquire(pool);
    }
    this.fallBackFromReplicas(driver);
    this.ds.subscribers.push(this.querySubscriber());
    this.metrics.onCollect(() => {
      const s = this.poolStats.stats();
      this.metrics.dbPoolConnections.set({ state: 'total' }, s.total);
      this.metrics.dbPoolConnections.set({ state: 'idle' }, s.idle);
      this.metrics.dbPoolConnections.set({ state: 'waiting' }, s.waiting);
    });
  }

  private timeAcquire(pool: Pool): void {
    const original = pool.connect.bind(pool) as (cb?: ConnectCb) => Promise<PoolClient> | void;
    const histogram = this.metrics.dbPoolAcquire;
    (pool as unknown as { connect: unknown }).connect = (cb?: ConnectCb) => {
      const end = histogram.startTimer();
      if (typeof cb === 'function') {
        return original((err, client, release) => {
          end();
          cb(err, client, release);
        });
      }
      return (original() as Promise<PoolClient>).finally(end);
    };
  }

  private fallBackFromReplicas(driver: PostgresDriver): void {
    if (!driver.slaves?.length) return;
    const obtainSlave = driver.obtainSlaveConnection.bind(driver);
    let lastWarn = 0;
    driver.obtainSlaveConnection = async () => {
      try {
        return await obtainSlave();
      } catch (err) {
        if (Date.now() - lastWarn > 10_000) {
          lastWarn = Date.now();
          this.logger.warn({ err: (err as Error).message }, 'replica unreachable, reading from the primary');
        }
        return driver.obtainMasterConnection();
      }
    };
  }

  /** Records one query's duration; slow ones are counted and logged (statement only, never its parameters). */
  observeQuery(ms: number, query: string): void {
    this.metrics.dbQueryDuration.observe(ms / 1000);
    if (ms > this.cfg.slowQueryMs) {
      this.metrics.dbSlowQueries.inc();
      this.poolStats.recordSlowQuery();
      // The statement only, never its parameters (they may carry personal data or hashes).
      this.logger.warn({ durationMs: ms, query: query.slice(0, 500) }, 'slow query');
    }
  }

  private querySubscriber(): EntitySubscriberInterface {
    return {
      afterQuery: (event: AfterQueryEvent<unknown>) => {
        if (event.executionTime !== undefined) this.observeQuery(event.executionTime, event.query);
      },
    };
  }
}
