import { HttpException, HttpStatus, ServiceUnavailableException } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ServiceCheck } from '../health/health-contributor';

export type StorageDriver = 'local' | 's3';

/** A key that is empty, absolute, has `..` segments or would otherwise leave the store's root. */
export class StoragePathError extends Error {
  constructor() {
    super('storage path is outside the upload directory');
  }
}

const MAX_KEY_LENGTH = 900;

/**
 * Checks a storage key (`<yyyy>/<mm>/<uuid>.<ext>` and its variants `<yyyy>/<mm>/<uuid>.d/<name>`): a
 * relative, forward-slash path without `.`/`..` segments, NUL or backslash. Throws StoragePathError.
 */
export function assertKey(key: string): string {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    key.length > MAX_KEY_LENGTH ||
    key.includes('\0') ||
    key.includes('\\') ||
    key.startsWith('/') ||
    /^[A-Za-z]:/.test(key) ||
    key.split('/').some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new StoragePathError();
  }
  return key;
}

/** Directory (key prefix) of an original's variants: `<yyyy>/<mm>/<uuid>.<ext>` → `<yyyy>/<mm>/<uuid>.d`. */
export function variantsDirOf(key: string): string {
  const slash = key.lastIndexOf('/');
  const base = key.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  return `${key.slice(0, slash + 1)}${dot > 0 ? base.slice(0, dot) : base}.d`;
}

/** An accepted upload to store: held in memory, or a staged file that the store moves or consumes. */
export type StoreSource = { data: Buffer; tempPath?: undefined } | { tempPath: string; data?: undefined };

/** What a GET of a stored object needs from the request. */
export interface ReadRequest {
  method?: string;
  headers: IncomingHttpHeaders;
}

/** A stored object ready to be answered: 200/206 with a body, or 304 without. */
export interface ReadAnswer {
  status: 200 | 206 | 304;
  /** Content-Length, ETag, Last-Modified, Accept-Ranges, Content-Range (206) as the store gives them. */
  headers: Record<string, string | number>;
  body?: Readable;
}

/**
 * The one place that knows how image files are stored (CONTRACT §9): `local` (files under UPLOAD_DIR,
 * shared by every process) or `s3` (objects in a bucket, nothing under UPLOAD_DIR). Originals,
 * thumbnails and overlays, their reads (with Range and conditional requests), deletion, the ML link
 * and the storage health all go through it; no other module touches the file system for images.
 *
 * Errors: a missing object → NotFoundException; the store unreachable or timing out →
 * ServiceUnavailableException (503); out of space / over quota → 507 ({@link insufficientStorage}).
 */
export abstract class ObjectStore {
  abstract readonly driver: StorageDriver;
  /**
   * Directory where uploads are staged before they are inspected: under UPLOAD_DIR with `local` (so a
   * staged file is renamed into place), a process-local scratch directory with `s3`.
   */
  abstract readonly stagingDir: string;

  /** Stores an accepted upload at `key` (new, server-generated). A staged file is moved or consumed. */
  abstract putNew(key: string, source: StoreSource, contentType: string): Promise<void>;

  abstract exists(key: string): Promise<boolean>;

  /** Opens an object for a GET: single `Range` → 206 (unsatisfiable → 416), `If-None-Match` → 304. */
  abstract read(key: string, req: ReadRequest): Promise<ReadAnswer>;

  /** Runs `fn` with the path of a local file holding the object (a scratch copy with s3, removed after). */
  abstract withLocalFile<T>(key: string, fn: (path: string) => Promise<T>): Promise<T>;

  /**
   * Writes a derived object: `make(tempPath)` writes a file, which then becomes `key` whole (a reader
   * never sees part of it, even when two processes make it at once).
   */
  abstract putDerived(
    key: string,
    make: (tempPath: string) => Promise<void>,
    contentType: string,
  ): Promise<void>;

  /** Names (not keys) of the objects directly inside `dirKey/`. */
  abstract list(dirKey: string): Promise<string[]>;

  /** Deletes one object; true when it existed (s3 cannot tell: always true). */
  abstract remove(key: string): Promise<boolean>;

  /** Deletes every object under `dirKey/`. */
  abstract removeTree(dirKey: string): Promise<void>;

  /**
   * Deletes an image's original and every variant ({@link variantsDirOf}). When the store cannot be
   * reached the deletion is left to the sweeper (s3), so no object outlives its image row for long.
   */
  abstract removeImage(key: string): Promise<void>;

  /** Whether the ML service may be sent `key` (local: the file exists under UPLOAD_DIR; s3: a valid key). */
  abstract mayRead(key: string): Promise<boolean>;

  /** A presigned GET link valid for `ttlSeconds` (s3); undefined with `local`. */
  abstract presignGet(key: string, ttlSeconds: number): Promise<string | undefined>;

  /** Health of the store (s3: the bucket answers); must settle within ~1 s. */
  abstract check(): Promise<ServiceCheck>;
}

/** 416, with the `Content-Range: bytes *\/<size>` the answer must carry. */
export class RangeNotSatisfiableError extends HttpException {
  constructor(readonly contentRange: string) {
    super('the requested range is not satisfiable', HttpStatus.REQUESTED_RANGE_NOT_SATISFIABLE);
  }
}

/**
 * Objects written but not yet known to be wanted (s3): recorded before an upload is stored, so that a
 * process that dies (or a store that fails) between the write and the image row leaves nothing behind
 * for long. The sweeper deletes every recorded key whose time has come and that no image row names.
 */
export interface StorageJournal {
  /** Records `key` (a storage path); the sweeper looks at it after `dueInMs`. */
  record(key: string, dueInMs: number): Promise<void>;
}

export const STORAGE_UNAVAILABLE = 'image storage is unavailable, retry later';
export const STORAGE_FULL = 'image storage is full: the file could not be stored';

export const storageUnavailable = (): ServiceUnavailableException =>
  new ServiceUnavailableException(STORAGE_UNAVAILABLE);
export const insufficientStorage = (): HttpException =>
  new HttpException(STORAGE_FULL, HttpStatus.INSUFFICIENT_STORAGE);

/** File-system errors that mean "no space left" (a full disk, a user quota). */
export const isNoSpace = (err: unknown): boolean =>
  ['ENOSPC', 'EDQUOT'].includes((err as NodeJS.ErrnoException)?.code ?? '');
