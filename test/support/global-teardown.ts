import { Client } from 'pg';
import Redis from 'ioredis';
import { rmSync } from 'node:fs';

/** Drops this run's database and deletes its Redis keys. */
export default async function globalTeardown(): Promise<void> {
  const base = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const dbName = process.env.TEST_DATABASE_NAME;
  if (dbName && !process.env.KEEP_TEST_DB) {
    const admin = new Client({ connectionString: base });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  }
  const runId = process.env.TEST_RUN_ID;
  if (runId) {
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `*${runId}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await redis.quit();
  }
  if (process.env.UPLOAD_DIR?.includes('spheroseg-uploads-')) rmSync(process.env.UPLOAD_DIR, { recursive: true, force: true });
}
