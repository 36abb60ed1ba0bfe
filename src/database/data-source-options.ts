import type { DataSourceOptions } from 'typeorm';
import type { ConfigType } from '@nestjs/config';
import { databaseConfig } from '../config/configuration';
import { ALL_MIGRATIONS } from '../../migrations';

type DbConfig = ConfigType<typeof databaseConfig>;

/**
 * pg pool options from configuration: bounded size, idle recycling, a connection timeout (never an
 * endless wait for a free client) and a server-side statement timeout.
 */
export function poolOptions(cfg: DbConfig) {
  return {
    max: cfg.poolMax,
    idleTimeoutMillis: cfg.idleTimeoutMs,
    connectionTimeoutMillis: cfg.connectionTimeoutMs,
    statement_timeout: cfg.statementTimeoutMs || undefined,
    keepAlive: true,
    application_name: 'spheroseg',
  };
}

/** TypeORM options shared by the Nest module and the migration command. */
export function dataSourceOptions(cfg: DbConfig): DataSourceOptions {
  const base = {
    type: 'postgres' as const,
    extra: poolOptions(cfg),
    migrations: ALL_MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each' as const,
    maxQueryExecutionTime: cfg.slowQueryMs,
    synchronize: false,
  };
  if (cfg.replicaUrls.length === 0) return { ...base, url: cfg.url };
  return {
    ...base,
    replication: {
      master: { url: cfg.url },
      slaves: cfg.replicaUrls.map((url) => ({ url })),
      // Reads go to the primary unless a caller explicitly asks for a replica (lag-tolerant reads).
      defaultMode: 'master',
    },
  };
}

/** The same URL pointing at the maintenance database, used to create ours when it does not exist. */
export function maintenanceUrl(url: string): { adminUrl: string; database: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  u.pathname = '/postgres';
  return { adminUrl: u.toString(), database };
}
