import { Client } from 'pg';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Each test run gets a database and a queue name of its own, so concurrent runs never collide.
 * The database is created here (empty); the app applies migrations when it starts.
 */
export default async function globalSetup(): Promise<void> {
  const runId = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const base = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const dbName = `spheroseg_test_${runId}`;
  const admin = new Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${dbName}`;
  process.env.TEST_RUN_ID = runId;
  process.env.TEST_DATABASE_NAME = dbName;
  process.env.NODE_ENV = 'test';
  process.env.DATABASE_URL = url.toString();
  process.env.REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  process.env.QUEUE_NAME = `test_${runId}`;
  process.env.UPLOAD_DIR = mkdtempSync(path.join(tmpdir(), 'spheroseg-uploads-'));
  process.env.JWT_SECRET = randomBytes(24).toString('hex');
  process.env.LOG_LEVEL = process.env.LOG_LEVEL ?? 'silent';
}
