import { Logger } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';
import type { PostgresConnectionOptions } from 'typeorm/driver/postgres/PostgresConnectionOptions';
import type { PostgresConnectionCredentialsOptions } from 'typeorm/driver/postgres/PostgresConnectionCredentialsOptions';
import { redactSecrets } from '../common/redact';

type CreatePool = (options: PostgresConnectionOptions, credentials: PostgresConnectionCredentialsOptions) => Promise<unknown>;

/**
 * TypeORM opens one connection per pool while the DataSource initialises and fails the whole
 * initialisation when a replica does not answer: a process started during a replica outage (a
 * restart, a scale-out) could not start at all. Replicas only serve lag-tolerant reads, which fall
 * back to the primary (DatabaseInstrumentation), so a replica unreachable at start gets a lazy pool
 * instead: it connects on first use, and until the replica answers its reads go to the primary.
 * The primary stays mandatory. Call before `initialize()`.
 */
export function tolerateUnreachableReplicasAtStart(ds: DataSource): void {
  const driver = ds.driver as PostgresDriver;
  const replication = driver.options.replication;
  if (!replication?.slaves?.length) return;
  const logger = new Logger('Database');
  const create = (driver as unknown as { createPool: CreatePool }).createPool.bind(driver);
  (driver as unknown as { createPool: CreatePool }).createPool = async (options, credentials) => {
    try {
      return await create(options, credentials);
    } catch (err) {
      if (credentials === replication.master || !replication.slaves.includes(credentials)) throw err;
      logger.warn(
        { err: redactSecrets((err as Error).message) },
        'replica unreachable at start; its reads go to the primary until it answers',
      );
      const pool = new driver.postgres.Pool({ connectionString: credentials.url, ...(options.extra ?? {}) });
      pool.on('error', (e: Error) => logger.warn({ err: redactSecrets(e.message) }, 'replica pool error'));
      return pool;
    }
  };
}
