import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { databaseConfig } from '../config/configuration';
import { ConfigValidationError } from '../config/env.schema';
import { dataSourceOptions } from './data-source-options';
import { ensureDatabase } from './ensure-database';
import { runMigrationsLocked } from './run-migrations';

/** `npm run migration:run`: create the database if needed and apply pending migrations. */
async function main(): Promise<void> {
  const cfg = databaseConfig();
  await ensureDatabase(cfg.url);
  const ds = new DataSource({ ...dataSourceOptions(cfg), replication: undefined, url: cfg.url } as never);
  await ds.initialize();
  try {
    const applied = await runMigrationsLocked(ds);
    process.stdout.write(JSON.stringify({ level: 'info', msg: 'migrations applied', applied }) + '\n');
  } finally {
    await ds.destroy();
  }
}

main().catch((err: unknown) => {
  const msg = err instanceof ConfigValidationError ? err.message : `migration failed: ${(err as Error).message}`;
  process.stderr.write(JSON.stringify({ level: 'error', msg }) + '\n');
  process.exit(1);
});
