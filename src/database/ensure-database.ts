import { Client } from 'pg';
import { maintenanceUrl } from './data-source-options';

/** Creates the database named in `url` when it does not exist (safe when several processes race). */
export async function ensureDatabase(url: string, connectTimeoutMs = 5000): Promise<boolean> {
  const { adminUrl, database } = maintenanceUrl(url);
  const probe = new Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  try {
    await probe.connect();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err; // anything but "database does not exist"
  } finally {
    await probe.end().catch(() => undefined);
  }
  const admin = new Client({ connectionString: adminUrl, connectionTimeoutMillis: connectTimeoutMs });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '42P04') return false; // created meanwhile by another process
    throw err;
  } finally {
    await admin.end().catch(() => undefined);
  }
}
