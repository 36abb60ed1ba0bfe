import { Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ImageStorage } from '../images/image-storage';

/** Name of a derived file inside an image's derived directory: lower-case, no dot at the start. */
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Files derived from an original (thumbnails, overlays), kept beside it under UPLOAD_DIR:
 * `<yyyy>/<mm>/<uuid>.<ext>` has its variants in `<yyyy>/<mm>/<uuid>.d/`, so one recursive delete of
 * that directory removes every variant. A file is written to a temporary name in the same directory
 * and renamed into place (atomic on one file system): a reader sees either no file or a whole one,
 * even when two processes make the same file at once. Within a process, concurrent requests for the
 * same file share one generation.
 */
@Injectable()
export class DerivedFiles {
  private readonly logger = new Logger(DerivedFiles.name);
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly storage: ImageStorage) {}

  /** Directory of an original's variants, relative to UPLOAD_DIR. */
  dirOf(storagePath: string): string {
    const parsed = path.posix.parse(storagePath);
    return path.posix.join(parsed.dir, `${parsed.name}.d`);
  }

  /** Path (relative to UPLOAD_DIR) of one derived file of an original. */
  pathOf(storagePath: string, name: string): string {
    if (!NAME_RE.test(name)) throw new Error(`invalid derived file name ${JSON.stringify(name)}`);
    return path.posix.join(this.dirOf(storagePath), name);
  }

  /**
   * Makes sure a derived file exists: if it is not there yet, `make(tempAbsPath)` writes it to a
   * temporary file that is then renamed into place. Returns its path relative to UPLOAD_DIR.
   * `stillWanted` is asked after the rename; when it answers false (the image was deleted meanwhile)
   * the derived directory is removed again, so nothing outlives its image.
   */
  async ensure(
    storagePath: string,
    name: string,
    make: (tempAbsPath: string) => Promise<void>,
    stillWanted: () => Promise<boolean>,
  ): Promise<{ rel: string; created: boolean }> {
    const rel = this.pathOf(storagePath, name);
    const abs = this.storage.resolve(rel);
    if (await exists(abs)) return { rel, created: false };
    let job = this.inFlight.get(abs);
    if (!job) {
      job = this.generate(abs, make).finally(() => this.inFlight.delete(abs));
      this.inFlight.set(abs, job);
    }
    await job;
    if (!(await stillWanted())) {
      await this.removeAll(storagePath);
      throw new DerivedFileGoneError();
    }
    return { rel, created: true };
  }

  /** Removes the derived files of an original whose names `keep` rejects (e.g. overlays of an old result). */
  async prune(storagePath: string, keep: (name: string) => boolean): Promise<void> {
    const dir = this.storage.resolve(this.dirOf(storagePath));
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      if (NAME_RE.test(name) && !keep(name)) await unlink(path.join(dir, name)).catch(() => undefined);
    }
  }

  /** Removes every derived file of an original (one recursive delete). */
  async removeAll(storagePath: string): Promise<void> {
    await rm(this.storage.resolve(this.dirOf(storagePath)), { recursive: true, force: true });
  }

  private async generate(abs: string, make: (tempAbsPath: string) => Promise<void>): Promise<void> {
    await mkdir(path.dirname(abs), { recursive: true });
    const temp = path.join(path.dirname(abs), `.tmp-${randomUUID()}`);
    try {
      await make(temp);
      await rename(temp, abs);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      this.logger.warn({ err: (err as Error).message }, 'could not make a derived image file');
      throw err;
    }
  }
}

/** The image went away while one of its variants was being made. */
export class DerivedFileGoneError extends Error {
  constructor() {
    super('image deleted');
  }
}

async function exists(abs: string): Promise<boolean> {
  try {
    return (await stat(abs)).isFile();
  } catch {
    return false;
  }
}
