import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { S3TestServer } from './s3-server';

/** The two drivers of CONTRACT §9; suites that touch image files run once per driver (describe.each). */
export const STORAGE_DRIVERS = ['local', 's3'] as const;
export type StorageDriverName = (typeof STORAGE_DRIVERS)[number];

/** Every file under `dir` (recursive), relative. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

/** One app's storage in a test: its env and a view of what it stored. */
export interface StorageUnderTest {
  driver: StorageDriverName;
  /** UPLOAD_DIR of the app (with `s3` it must stay empty). */
  uploadDir: string;
  /** Env for startTestApp. */
  env: Record<string, string>;
  /** With `s3`: the server and the bucket. */
  s3?: S3TestServer;
  bucket?: string;
  /**
   * Every stored file or object, as storage keys (`<yyyy>/<mm>/<uuid>.<ext>`, variants `….d/<name>`),
   * staged uploads included (`.incoming/…` with `local`); with `s3`, anything under UPLOAD_DIR too, as
   * `UPLOAD_DIR/<path>` (there must never be any).
   */
  files(): Promise<string[]>;
  /** A stored object's bytes (null when missing). */
  read(key: string): Promise<Buffer | null>;
  /** Replaces a stored object's bytes (to corrupt an original in a test). */
  write(key: string, data: Buffer): Promise<void>;
  cleanup(): void;
}

let bucketSeq = 0;

/**
 * Storage for one app under `driver`: a fresh UPLOAD_DIR, and with `s3` a bucket of its own on
 * `server` (one S3TestServer per suite file, started by the caller), which the app creates on start.
 */
export function storageFor(driver: StorageDriverName, tag: string, server?: S3TestServer): StorageUnderTest {
  const uploadDir = path.join(mkdtempSync(path.join(tmpdir(), `${tag}-`)), 'uploads');
  if (driver === 'local') {
    return {
      driver,
      uploadDir,
      env: { STORAGE_DRIVER: 'local', UPLOAD_DIR: uploadDir },
      files: async () => filesUnder(uploadDir),
      read: (key) => readFile(path.join(uploadDir, key)).catch(() => null),
      write: (key, data) => writeFile(path.join(uploadDir, key), data),
      cleanup: () => rmSync(path.dirname(uploadDir), { recursive: true, force: true }),
    };
  }
  if (!server) throw new Error('storageFor(s3) needs a started S3TestServer');
  const bucket = `${tag
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40)}-${process.pid}-${++bucketSeq}`;
  return {
    driver,
    uploadDir,
    env: { ...server.env(bucket), UPLOAD_DIR: uploadDir },
    s3: server,
    bucket,
    files: async () => [
      ...(await server.keys(bucket)),
      ...filesUnder(uploadDir).map((f) => `UPLOAD_DIR/${f}`),
    ],
    read: async (key) => {
      const { GetObjectCommand } = await import('@aws-sdk/client-s3');
      const client = server.client();
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from(await out.Body!.transformToByteArray());
      } catch {
        return null;
      } finally {
        client.destroy();
      }
    },
    write: async (key, data) => {
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      const client = server.client();
      try {
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
      } finally {
        client.destroy();
      }
    },
    cleanup: () => rmSync(path.dirname(uploadDir), { recursive: true, force: true }),
  };
}
