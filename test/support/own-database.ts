import { Client } from 'pg';
import { DataSource, type MigrationInterface } from 'typeorm';
import { ALL_MIGRATIONS } from '../../migrations';
import { runMigrationsLocked } from '../../src/database/run-migrations';

/**
 * A database of a suite's own, beside this run's shared one (same server), for suites that look at
 * every row of a table: the reconciler queues every stale open task of its database, and the other
 * files of a run leave open tasks (some inserted without a Bull job, 10 000 in one file), so in the
 * shared database what such a suite sees depends on which files ran before it.
 * `create()` gives its URL (the app applies migrations when it starts); `drop()` removes it.
 */
export function ownDatabase(suffix: string): { create(): Promise<string>; drop(): Promise<void> } {
  const shared = new URL(process.env.DATABASE_URL!);
  const name = `${shared.pathname.slice(1)}_${suffix}`;
  const onServer = async (sql: string): Promise<void> => {
    const u = new URL(shared);
    u.pathname = '/postgres';
    const c = new Client({ connectionString: u.toString() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    async create() {
      await onServer(`CREATE DATABASE "${name}"`);
      const u = new URL(shared);
      u.pathname = `/${name}`;
      return u.toString();
    },
    drop: () => onServer(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

/**
 * Applies `migrations` (every migration unless told: a suite may stop at an earlier version) to the
 * database at `url`, as the app does at start, without starting an app.
 */
export async function applyMigrations(url: string, migrations: Array<new () => MigrationInterface> = ALL_MIGRATIONS): Promise<void> {
  const ds = new DataSource({ type: 'postgres', url, migrations, migrationsTableName: 'migrations' });
  await ds.initialize();
  try {
    await runMigrationsLocked(ds);
  } finally {
    await ds.destroy();
  }
}
