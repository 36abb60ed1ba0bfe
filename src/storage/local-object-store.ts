import { HttpException, Logger, NotFoundException } from '@nestjs/common';
import send from '@fastify/send';
import { randomUUID } from 'node:crypto';
import { accessSync, writeFile } from 'node:fs';
import { access, mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { ServiceCheck } from '../health/health-contributor';
import {
  assertKey,
  insufficientStorage,
  isNoSpace,
  ObjectStore,
  RangeNotSatisfiableError,
  ReadAnswer,
  ReadRequest,
  StoragePathError,
  StoreSource,
  variantsDirOf,
} from './object-store';

/** Sub-directory of UPLOAD_DIR where uploads are written before they are inspected. */
export const STAGING_DIR = '.incoming';

/**
 * `STORAGE_DRIVER=local` (the default, the behaviour before drivers existed): files under UPLOAD_DIR,
 * which every process shares. An upload is staged in `<UPLOAD_DIR>/.incoming` and renamed into place
 * (same file system, atomic); one held in memory is written with `wx` in one call. Derived files are
 * written to a temporary name in their directory and renamed. Reads go through @fastify/send
 * (Content-Length, ETag from size + mtime, Last-Modified, single Range, 304, HEAD).
 */
export class LocalObjectStore extends ObjectStore {
  readonly driver = 'local' as const;
  readonly root: string;
  readonly stagingDir: string;
  private readonly logger = new Logger('LocalObjectStore');
  /** Directories this process has made (or found): `putNew` does not mkdir them again. */
  private readonly madeDirs = new Set<string>();

  constructor(uploadDir: string) {
    super();
    this.root = path.resolve(uploadDir);
    this.stagingDir = path.join(this.root, STAGING_DIR);
  }

  /** Absolute path of a stored file; throws StoragePathError for anything that would leave UPLOAD_DIR. */
  resolve(key: string): string {
    assertKey(key);
    const abs = path.resolve(this.root, key);
    if (!abs.startsWith(this.root + path.sep)) throw new StoragePathError();
    return abs;
  }

  async putNew(key: string, source: StoreSource, _contentType: string): Promise<void> {
    const abs = this.resolve(key);
    const dir = path.dirname(abs);
    const place = (): Promise<void> =>
      source.data ? this.writeNew(abs, source.data) : rename(source.tempPath, abs);
    try {
      if (!this.madeDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.madeDirs.add(dir);
      }
      try {
        await place();
      } catch (err) {
        // The directory was removed since this process made it (or a staged file vanished): make it
        // again and retry once.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        await mkdir(dir, { recursive: true });
        await place();
      }
    } catch (err) {
      if (isNoSpace(err)) throw insufficientStorage();
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.resolve(key))).isFile();
    } catch (err) {
      if (err instanceof StoragePathError) throw err;
      return false;
    }
  }

  async read(key: string, req: ReadRequest): Promise<ReadAnswer> {
    this.resolve(key); // throws for anything outside UPLOAD_DIR
    // Conditional requests are decided by the validators alone (RFC 9110 §13.2): a request's
    // `Cache-Control: no-cache` (fetch() adds it to every conditional request) must not turn a 304 into
    // a 200, which @fastify/send would do, so send never sees that header.
    const headers = { ...req.headers };
    delete headers['cache-control'];
    const out = await send(
      { method: req.method, headers } as unknown as Parameters<typeof send>[0],
      `/${key}`,
      {
        root: this.root,
        dotfiles: 'deny',
        index: false,
        cacheControl: false,
        acceptRanges: true,
        etag: true,
        lastModified: true,
      },
    );
    if (out.type === 'error') {
      out.stream.destroy?.();
      if (out.statusCode === 416) {
        throw new RangeNotSatisfiableError(String(out.headers['Content-Range']));
      }
      if (out.statusCode === 412) throw new HttpException('precondition failed', 412);
      if (out.statusCode === 404) throw new NotFoundException('image not found');
      throw new Error(`file could not be sent (${out.statusCode})`);
    }
    if (out.type !== 'file') throw new NotFoundException('image not found');
    const status = out.statusCode as 200 | 206 | 304;
    return { status, headers: { ...(out.headers as Record<string, string | number>) }, body: out.stream };
  }

  withLocalFile<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    return fn(this.resolve(key));
  }

  async putDerived(key: string, make: (tempPath: string) => Promise<void>): Promise<void> {
    const abs = this.resolve(key);
    await mkdir(path.dirname(abs), { recursive: true });
    const temp = path.join(path.dirname(abs), `.tmp-${randomUUID()}`);
    try {
      await make(temp);
      await rename(temp, abs);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (isNoSpace(err)) throw insufficientStorage();
      throw err;
    }
  }

  async list(dirKey: string): Promise<string[]> {
    return readdir(this.resolve(dirKey)).catch(() => [] as string[]);
  }

  async remove(key: string): Promise<boolean> {
    try {
      await unlink(this.resolve(key));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async removeTree(dirKey: string): Promise<void> {
    await rm(this.resolve(dirKey), { recursive: true, force: true });
  }

  async removeImage(key: string): Promise<void> {
    await this.remove(key);
    await this.removeTree(variantsDirOf(key));
  }

  async mayRead(key: string): Promise<boolean> {
    let abs: string;
    try {
      abs = this.resolve(key);
    } catch {
      return false;
    }
    // A synchronous stat: one syscall (≈ 2 µs here), where fs.promises.access costs ≈ 68 µs of CPU in
    // thread-pool hand-offs and wake-ups, once per segmentation job on the worker. The path is a
    // local disk's (UPLOAD_DIR); a shared network mount that can hang should use STORAGE_DRIVER=s3.
    try {
      accessSync(abs);
      return true;
    } catch {
      return false;
    }
  }

  async presignGet(): Promise<undefined> {
    return undefined;
  }

  async check(): Promise<ServiceCheck> {
    try {
      await access(this.root);
      return { up: true, details: { driver: 'local' } };
    } catch {
      return { up: false, details: { driver: 'local', error: 'upload directory not accessible' } };
    }
  }

  /** Creates `abs` (it must not exist) holding `data`; on a failed write the partial file is deleted. */
  private writeNew(abs: string, data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // The callback API: fs/promises' writeFile goes through a FileHandle, which costs more per call.
      writeFile(abs, data, { flag: 'wx' }, (err) => {
        if (!err) return resolve();
        // ENOENT/EEXIST come from the open: nothing of ours was created.
        if (err.code === 'ENOENT' || err.code === 'EEXIST') return reject(err);
        void unlink(abs)
          .catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'ENOENT')
              this.logger.warn({ err: e.code ?? e.message }, 'could not delete a partial file');
          })
          .then(() => reject(err));
      });
    });
  }
}
