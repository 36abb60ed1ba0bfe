import { Logger, NotFoundException, OnModuleInit } from '@nestjs/common';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ServiceCheck } from '../health/health-contributor';
import {
  assertKey,
  insufficientStorage,
  isNoSpace,
  ObjectStore,
  RangeNotSatisfiableError,
  ReadAnswer,
  ReadRequest,
  StorageJournal,
  storageUnavailable,
  StoreSource,
  variantsDirOf,
} from './object-store';
import { putObjectFromFile } from './s3-put-file';

export interface S3StoreOptions {
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** Key prefix ('' or ending with '/'). */
  prefix: string;
}

/** A connection to the store must open within this. */
const CONNECT_TIMEOUT_MS = 2000;
/** A socket with no traffic for this long is given up (a store that accepted and then hangs). */
const SOCKET_IDLE_MS = 5000;
/** Whole-request bound for metadata calls (HEAD, DELETE, LIST, first byte of a GET). */
const OP_TIMEOUT_MS = 8000;
/** An upload not stored within this is aborted (503) and its object removed. */
export const UPLOAD_DEADLINE_MS = 20_000;
/** When the sweeper looks at a recorded upload (after the deadline, so never at one in progress). */
export const PENDING_DUE_MS = UPLOAD_DEADLINE_MS + 10_000;

/** Error names (S3, MinIO, Ceph RGW) that mean "no room": 507, not 503. */
const FULL_CODES = new Set([
  'QuotaExceeded',
  'XMinioStorageFull',
  'XMinioAdminBucketQuotaExceeded',
  'InsufficientStorage',
  'StorageFull',
]);

type Kind = 'missing' | 'full' | 'range' | 'not-modified' | 'unavailable';

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

/** What an SDK error means for the caller. Anything unknown (network, 5xx, timeouts, access) is 'unavailable'. */
export function classifyS3Error(err: unknown): Kind {
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.Code ?? e.name ?? '';
  if (status === 304) return 'not-modified';
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return 'missing';
  if (name === 'InvalidRange' || status === 416) return 'range';
  if (FULL_CODES.has(name) || status === 507) return 'full';
  return 'unavailable';
}

/** One `bytes=a-b` / `bytes=a-` / `bytes=-n` range (others, e.g. several ranges, are ignored: 200). */
const SINGLE_RANGE = /^bytes=(\d+-\d*|-\d+)$/;

/**
 * `STORAGE_DRIVER=s3`: objects in S3_BUCKET under S3_PREFIX, keys the same relative paths as with
 * `local` (`<yyyy>/<mm>/<uuid>.<ext>`, variants under `<…>/<uuid>.d/`), so rows never change between
 * drivers. Nothing is written under UPLOAD_DIR: uploads are staged in a process-local scratch
 * directory (inspected there, then sent to the store in 5 MiB parts: {@link putObjectFromFile}).
 *
 * Every request is bounded ({@link CONNECT_TIMEOUT_MS}, {@link SOCKET_IDLE_MS}, {@link OP_TIMEOUT_MS},
 * one retry), so a store that is down or hangs gives 503 in bounded time. Checksums are computed only
 * when an operation requires them (`WHEN_REQUIRED`), which every S3-compatible store accepts.
 */
export class S3ObjectStore extends ObjectStore implements OnModuleInit {
  readonly driver = 's3' as const;
  readonly stagingDir = path.join(tmpdir(), `spheroseg-staging-${process.pid}`);
  readonly client: S3Client;
  private readonly logger = new Logger('S3ObjectStore');
  private bucketReady: Promise<void> | undefined;

  constructor(
    private readonly opts: S3StoreOptions,
    private readonly journal?: StorageJournal,
  ) {
    super();
    this.client = new S3Client({
      endpoint: opts.endpoint,
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      credentials:
        opts.accessKeyId && opts.secretAccessKey
          ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
          : undefined,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: SOCKET_IDLE_MS },
    });
  }

  get bucket(): string {
    return this.opts.bucket;
  }

  /** The object key of a storage path (S3_PREFIX + path). */
  objectKey(key: string): string {
    return this.opts.prefix + assertKey(key);
  }

  async onModuleInit(): Promise<void> {
    await this.ensureBucket().catch((err: unknown) =>
      this.logger.warn({ err: errName(err) }, 'storage bucket not reachable at start; retried on first use'),
    );
  }

  /** Creates S3_BUCKET when it is missing (once per process; retried after a failure). */
  ensureBucket(): Promise<void> {
    this.bucketReady ??= (async () => {
      try {
        await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), {
          abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
        });
      } catch (err) {
        if (classifyS3Error(err) !== 'missing') throw err;
        await this.client
          .send(
            new CreateBucketCommand({
              Bucket: this.bucket,
              ...(this.opts.region !== 'us-east-1'
                ? { CreateBucketConfiguration: { LocationConstraint: this.opts.region as never } }
                : {}),
            }),
            { abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) },
          )
          .catch((e: unknown) => {
            if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(errName(e))) throw e;
          });
        this.logger.log({ bucket: this.bucket }, 'storage bucket created');
      }
    })().catch((err: unknown) => {
      this.bucketReady = undefined;
      throw err;
    });
    return this.bucketReady;
  }

  async putNew(key: string, source: StoreSource, contentType: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.ensureBucket();
    } catch (err) {
      throw this.failure(err, 'bucket');
    }
    // Recorded first: if this process dies from here on, the sweeper removes the object.
    await this.journal?.record(key, PENDING_DUE_MS);
    let timedOut = false;
    try {
      await this.upload(objectKey, source, contentType, () => (timedOut = true));
    } catch (err) {
      // Whatever reached the store goes now when the store answers (a refusal such as a quota), else it
      // is left to the sweeper (due at once), so the answer is not held up by a store that is gone.
      if (timedOut || classifyS3Error(err) === 'unavailable')
        await this.journal?.record(key, 0).catch(() => undefined);
      else await this.removeOrDefer(key);
      throw timedOut ? storageUnavailable() : this.failure(err, 'upload');
    }
    if (source.tempPath !== undefined) await unlink(source.tempPath).catch(() => undefined);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), {
        abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      return true;
    } catch (err) {
      if (classifyS3Error(err) === 'missing') return false;
      throw this.failure(err, 'head');
    }
  }

  async read(key: string, req: ReadRequest): Promise<ReadAnswer> {
    const objectKey = this.objectKey(key);
    const rangeHeader =
      typeof req.headers.range === 'string' ? req.headers.range.replace(/\s+/g, '') : undefined;
    let range = rangeHeader && SINGLE_RANGE.test(rangeHeader) ? rangeHeader : undefined;
    if (range?.startsWith('bytes=-')) {
      // A suffix range, made explicit: not every S3-compatible store reads `bytes=-n` right (s3rver does not).
      const size = await this.size(key);
      const n = Number(range.slice(7));
      if (n === 0 || size === 0) throw new RangeNotSatisfiableError(`bytes */${size}`);
      range = `bytes=${Math.max(0, size - n)}-${size - 1}`;
    }
    const ifNoneMatch =
      typeof req.headers['if-none-match'] === 'string' ? req.headers['if-none-match'] : undefined;
    // Bounded until the answer's headers arrive; the body then streams under the socket idle timeout.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), OP_TIMEOUT_MS);
    timer.unref();
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: range, IfNoneMatch: ifNoneMatch }),
        { abortSignal: ctl.signal },
      );
      const headers: Record<string, string | number> = { 'Accept-Ranges': 'bytes' };
      if (out.ContentLength !== undefined) headers['Content-Length'] = out.ContentLength;
      if (out.ETag) headers['ETag'] = out.ETag;
      if (out.LastModified) headers['Last-Modified'] = out.LastModified.toUTCString();
      if (out.ContentRange) headers['Content-Range'] = out.ContentRange;
      return { status: out.ContentRange && range ? 206 : 200, headers, body: out.Body as Readable };
    } catch (err) {
      const kind = classifyS3Error(err);
      if (kind === 'not-modified') return { status: 304, headers: ifNoneMatch ? { ETag: ifNoneMatch } : {} };
      if (kind === 'range') {
        const size = await this.size(key);
        throw new RangeNotSatisfiableError(`bytes */${size}`);
      }
      throw this.failure(err, 'get');
    } finally {
      clearTimeout(timer);
    }
  }

  async withLocalFile<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    const temp = await this.scratchPath();
    try {
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(), OP_TIMEOUT_MS);
      timer.unref();
      let body: Readable;
      try {
        const out = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
          {
            abortSignal: ctl.signal,
          },
        );
        body = out.Body as Readable;
      } catch (err) {
        throw this.failure(err, 'get');
      } finally {
        clearTimeout(timer);
      }
      await pipeline(body, createWriteStream(temp)).catch((err: unknown) => {
        throw isNoSpace(err) ? insufficientStorage() : this.failure(err, 'get');
      });
      return await fn(temp);
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async putDerived(
    key: string,
    make: (tempPath: string) => Promise<void>,
    contentType: string,
  ): Promise<void> {
    const objectKey = this.objectKey(key);
    const temp = await this.scratchPath();
    try {
      await make(temp);
      try {
        await this.upload(objectKey, { tempPath: temp }, contentType);
      } catch (err) {
        throw this.failure(err, 'upload');
      }
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async list(dirKey: string): Promise<string[]> {
    const prefix = `${this.objectKey(dirKey)}/`;
    return (await this.listKeys(prefix))
      .map((k) => k.slice(prefix.length))
      .filter((n) => n && !n.includes('/'));
  }

  async remove(key: string): Promise<boolean> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), {
        abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      return true;
    } catch (err) {
      throw this.failure(err, 'delete');
    }
  }

  async removeTree(dirKey: string): Promise<void> {
    const keys = await this.listKeys(`${this.objectKey(dirKey)}/`);
    await this.deleteKeys(keys);
  }

  /** Deletes the original and its variants now; when the store cannot, the sweeper does it later. */
  async removeImage(key: string): Promise<void> {
    try {
      await this.removeNow(key);
    } catch (err) {
      this.logger.warn({ err: errName(err) }, 'image objects not deleted now; left to the storage sweeper');
      await this.journal?.record(key, 0);
    }
  }

  /** The original and every variant, or throws. */
  async removeNow(key: string): Promise<void> {
    await this.deleteKeys([
      this.objectKey(key),
      ...(await this.listKeys(`${this.objectKey(variantsDirOf(key))}/`)),
    ]);
  }

  async mayRead(key: string): Promise<boolean> {
    try {
      assertKey(key);
      return true;
    } catch {
      return false;
    }
  }

  presignGet(key: string, ttlSeconds: number): Promise<string> {
    const expiresIn = Math.max(1, Math.min(604_800, Math.ceil(ttlSeconds)));
    return getSignedUrl(
      this.client,
      new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      { expiresIn },
    );
  }

  async check(): Promise<ServiceCheck> {
    const started = performance.now();
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: AbortSignal.timeout(900),
      });
      return {
        up: true,
        details: { driver: 's3', bucket: this.bucket, latencyMs: Math.round(performance.now() - started) },
      };
    } catch (err) {
      const kind = classifyS3Error(err);
      return {
        up: false,
        details: {
          driver: 's3',
          bucket: this.bucket,
          error: kind === 'missing' ? 'bucket does not exist' : 'storage unreachable',
        },
      };
    }
  }

  onApplicationShutdown(): void {
    this.client.destroy();
  }

  /**
   * Sends an object: in one PUT when held in memory, else from its file in reused part buffers
   * ({@link putObjectFromFile}), so the memory held does not depend on the file's size. Aborted (and
   * `onDeadline` called) after {@link UPLOAD_DEADLINE_MS}.
   */
  private async upload(
    objectKey: string,
    source: StoreSource,
    contentType: string,
    onDeadline?: () => void,
  ): Promise<void> {
    const ctl = new AbortController();
    const timer = setTimeout(() => {
      onDeadline?.();
      ctl.abort();
    }, UPLOAD_DEADLINE_MS);
    timer.unref();
    const target = { Bucket: this.bucket, Key: objectKey, ContentType: contentType };
    try {
      if (source.data) {
        await this.client.send(new PutObjectCommand({ ...target, Body: source.data }), {
          abortSignal: ctl.signal,
        });
      } else {
        await putObjectFromFile(this.client, target, source.tempPath, ctl.signal, OP_TIMEOUT_MS);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private async removeOrDefer(key: string): Promise<void> {
    try {
      await this.removeNow(key);
    } catch {
      await this.journal?.record(key, 0).catch(() => undefined);
    }
  }

  private async size(key: string): Promise<number> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
        {
          abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
        },
      );
      return head.ContentLength ?? 0;
    } catch (err) {
      throw this.failure(err, 'head');
    }
  }

  private async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
          { abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) },
        );
        for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.failure(err, 'list');
    }
    return keys;
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        if (batch.length === 1) {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: batch[0] }), {
            abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
          });
          continue;
        }
        const out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) },
        );
        if (out.Errors?.length) throw new Error(`${out.Errors.length} objects could not be deleted`);
      } catch (err) {
        throw this.failure(err, 'delete');
      }
    }
  }

  private async scratchPath(): Promise<string> {
    await mkdir(this.stagingDir, { recursive: true });
    return path.join(this.stagingDir, `${randomUUID()}.tmp`);
  }

  /** An SDK error as the HTTP error the caller answers (missing → 404, full → 507, else 503). */
  private failure(err: unknown, op: string): Error {
    if (err instanceof Error && 'getStatus' in err) return err; // already an HttpException
    const kind = classifyS3Error(err);
    if (kind === 'missing') return new NotFoundException('image not found');
    if (kind === 'full') return insufficientStorage();
    this.logger.warn({ op, err: errName(err) }, 'storage request failed');
    return storageUnavailable();
  }
}

function errName(err: unknown): string {
  const e = (err ?? {}) as SdkError & { message?: string };
  return e.Code ?? e.code ?? e.name ?? 'Error';
}
