import type { DataSource } from 'typeorm';

/** Arbitrary constant: the advisory lock key that serialises migration runs across processes. */
const MIGRATION_LOCK_KEY = 727_274_001;

/**
 * Runs pending migrations under a PostgreSQL advisory lock, so that several processes starting at
 * once apply them exactly once: the others wait, then find nothing pending.
 */
export async function runMigrationsLocked(ds: DataSource): Promise<string[]> {
  const runner = ds.createQueryRunner('master');
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await ds.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await runner.release();
  }
}
