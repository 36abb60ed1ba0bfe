import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Client } from 'pg';
import { databaseConfig, storageConfig } from '../config/configuration';
import { ConfigValidationError } from '../config/validate';
import { LocalObjectStore } from './local-object-store';
import { classifyS3Error, S3ObjectStore } from './s3-object-store';

/** What one run did (printed as one JSON line). */
export interface CopyReport {
  /** Uploaded and verified in this run. */
  copied: number;
  /** Already in the bucket with the same bytes (verified again), not uploaded. */
  present: number;
  /** Rows whose file is not under UPLOAD_DIR (nothing to copy). */
  missing: number;
  /** Uploaded but not verified (deleted again), or the upload failed. */
  failed: number;
}

export interface CopyOptions {
  databaseUrl: string;
  uploadDir: string;
  s3: S3ObjectStore;
  /** Images per keyset page. */
  pageSize?: number;
  /** Start after this image id (`--after-id=N`: resume a long run from the last id it logged). */
  afterId?: number;
  log?: (line: Record<string, unknown>) => void;
}

async function sha256(stream: Readable): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hash: h.digest('hex'), bytes };
}

/**
 * Copies every image's original from UPLOAD_DIR into the bucket under the same key (CONTRACT §9),
 * so a running deployment can switch STORAGE_DRIVER from `local` to `s3` without losing an image.
 * Reads `images` in id order, one keyset page at a time. Per image: the local file's SHA-256; when the
 * object already exists with those bytes (read back and hashed) it is left alone, else it is uploaded
 * and then read back and hashed — an object that does not match is deleted and counted as failed.
 * Resumable: a second run re-checks and copies only what is missing or different. It writes no row at
 * all (keys are the rows' `storage_path`, the same under both drivers), so nothing the api reads
 * changes before an object is verified. Thumbnails and overlays are not copied: they are made again
 * on first request.
 */
export async function copyUploadsToBucket(opts: CopyOptions): Promise<CopyReport> {
  const local = new LocalObjectStore(opts.uploadDir);
  const { s3 } = opts;
  const log = opts.log ?? (() => undefined);
  const report: CopyReport = { copied: 0, present: 0, missing: 0, failed: 0 };
  await s3.ensureBucket();
  const db = new Client({ connectionString: opts.databaseUrl });
  await db.connect();
  const remoteHash = async (key: string): Promise<string | null> => {
    try {
      await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: s3.objectKey(key) }));
    } catch (err) {
      if (classifyS3Error(err) === 'missing') return null;
      throw err;
    }
    const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: s3.objectKey(key) }));
    return (await sha256(out.Body as Readable)).hash;
  };
  try {
    let after = opts.afterId ?? 0;
    for (;;) {
      const { rows } = await db.query<{ id: number; storage_path: string; mime_type: string }>(
        'SELECT id, storage_path, mime_type FROM images WHERE id > $1 ORDER BY id LIMIT $2',
        [after, opts.pageSize ?? 500],
      );
      for (const row of rows) {
        const key = row.storage_path;
        let abs: string;
        try {
          abs = local.resolve(key);
          await stat(abs);
        } catch {
          report.missing++;
          log({ level: 'warn', imageId: row.id, msg: 'file not under UPLOAD_DIR; not copied' });
          continue;
        }
        const want = (await sha256(createReadStream(abs))).hash;
        if ((await remoteHash(key)) === want) {
          report.present++;
          continue;
        }
        try {
          await new Upload({
            client: s3.client,
            params: {
              Bucket: s3.bucket,
              Key: s3.objectKey(key),
              Body: createReadStream(abs),
              ContentType: row.mime_type,
            },
            partSize: 5 * 1024 * 1024,
            queueSize: 2,
          }).done();
          if ((await remoteHash(key)) !== want) throw new Error('object read back does not match the file');
          report.copied++;
          log({ level: 'info', imageId: row.id, msg: 'copied and verified' });
        } catch (err) {
          report.failed++;
          log({ level: 'error', imageId: row.id, msg: 'not copied', err: (err as Error).name });
          await s3.remove(key).catch(() => undefined);
        }
      }
      if (rows.length === 0) break;
      after = rows[rows.length - 1].id;
    }
  } finally {
    await db.end();
  }
  return report;
}

/** `npm run storage:copy-to-s3`: UPLOAD_DIR → S3_BUCKET with the backend's env (S3_* as for STORAGE_DRIVER=s3). */
async function main(): Promise<void> {
  let cfg: ReturnType<typeof storageConfig>;
  try {
    cfg = storageConfig();
    if (!cfg.s3.bucket) throw new ConfigValidationError('"S3_BUCKET" is required to copy into a bucket');
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  const s3 = new S3ObjectStore(cfg.s3);
  const log = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
  try {
    const arg = process.argv.find((a) => a.startsWith('--after-id='));
    const afterId = arg ? Number(arg.slice('--after-id='.length)) : 0;
    if (!Number.isInteger(afterId) || afterId < 0)
      throw new ConfigValidationError('--after-id must be an image id');
    const report = await copyUploadsToBucket({
      afterId,
      databaseUrl: databaseConfig().url,
      uploadDir: cfg.uploadDir,
      s3,
      log,
    });
    log({ level: 'info', msg: 'copy finished', ...report });
    process.exitCode = report.failed > 0 || report.missing > 0 ? 2 : 0;
  } catch (err) {
    log({ level: 'error', msg: 'copy stopped; run it again to resume', err: (err as Error).name });
    process.exitCode = 1;
  } finally {
    s3.client.destroy();
  }
}

if (require.main === module) void main();
