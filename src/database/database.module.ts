import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { ConfigType } from '@nestjs/config';
import { DataSource } from 'typeorm';
import { databaseConfig } from '../config/configuration';
import { dataSourceOptions } from './data-source-options';
import { ensureDatabase } from './ensure-database';
import { runMigrationsLocked } from './run-migrations';
import { DatabaseInstrumentation } from './database.instrumentation';
import { PoolStatsService } from './pool-stats.service';
import { DatabaseHealthIndicator } from './database.health';
import { tolerateUnreachableReplicasAtStart } from './replica-pools';
import { PreparedQueries } from './prepared-queries';

/**
 * TypeORM over a bounded pg pool. The DataSource handed to the rest of the app is created only after
 * the database exists and pending migrations are applied (under an advisory lock).
 */
@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [databaseConfig.KEY],
      useFactory: (cfg: ConfigType<typeof databaseConfig>) => ({
        ...dataSourceOptions(cfg),
        autoLoadEntities: true,
        retryAttempts: 10,
        retryDelay: 2000,
        logging: false,
      }),
      dataSourceFactory: async (options) => {
        const cfg = databaseConfig();
        await ensureDatabase(cfg.url, cfg.connectionTimeoutMs + 3000);
        const ds = new DataSource(options!);
        tolerateUnreachableReplicasAtStart(ds);
        await ds.initialize();
        if (cfg.migrationsRun) await runMigrationsLocked(ds);
        return ds;
      },
    }),
  ],
  providers: [DatabaseInstrumentation, PoolStatsService, DatabaseHealthIndicator, PreparedQueries],
  exports: [PoolStatsService, DatabaseHealthIndicator, PreparedQueries],
})
export class DatabaseModule {}
