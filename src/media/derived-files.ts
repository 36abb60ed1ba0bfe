import { Injectable, Logger } from '@nestjs/common';
import { ObjectStore, variantsDirOf } from '../storage/object-store';

/** Name of a derived file inside an image's derived directory: lower-case, no dot at the start. */
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Files derived from an original (thumbnails, overlays), kept beside it in the ObjectStore:
 * `<yyyy>/<mm>/<uuid>.<ext>` has its variants under `<yyyy>/<mm>/<uuid>.d/`, so the original's
 * deletion removes every variant with it. The store writes a variant whole (a reader sees either no
 * object or a whole one, even when two processes make the same one at once). Within a process,
 * concurrent requests for the same variant share one generation.
 */
@Injectable()
export class DerivedFiles {
  private readonly logger = new Logger(DerivedFiles.name);
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly store: ObjectStore) {}

  /** Directory of an original's variants (a storage key prefix). */
  dirOf(storagePath: string): string {
    return variantsDirOf(storagePath);
  }

  /** Storage key of one derived file of an original. */
  pathOf(storagePath: string, name: string): string {
    if (!NAME_RE.test(name)) throw new Error(`invalid derived file name ${JSON.stringify(name)}`);
    return `${this.dirOf(storagePath)}/${name}`;
  }

  /**
   * Makes sure a derived file exists: if it is not there yet, `make(tempPath)` writes it to a local
   * temporary file that the store then puts in place. Returns its storage key. `stillWanted` is asked
   * after it is stored; when it answers false (the image was deleted meanwhile) every variant is
   * removed again, so nothing outlives its image.
   */
  async ensure(
    storagePath: string,
    name: string,
    contentType: string,
    make: (tempPath: string) => Promise<void>,
    stillWanted: () => Promise<boolean>,
  ): Promise<{ rel: string; created: boolean }> {
    const rel = this.pathOf(storagePath, name);
    if (await this.store.exists(rel)) return { rel, created: false };
    let job = this.inFlight.get(rel);
    if (!job) {
      job = this.generate(rel, contentType, make).finally(() => this.inFlight.delete(rel));
      this.inFlight.set(rel, job);
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
    const names = await this.store.list(this.dirOf(storagePath)).catch(() => [] as string[]);
    for (const name of names) {
      if (NAME_RE.test(name) && !keep(name))
        await this.store.remove(this.pathOf(storagePath, name)).catch(() => undefined);
    }
  }

  /** Removes every derived file of an original. */
  async removeAll(storagePath: string): Promise<void> {
    await this.store.removeTree(this.dirOf(storagePath));
  }

  private async generate(
    rel: string,
    contentType: string,
    make: (tempPath: string) => Promise<void>,
  ): Promise<void> {
    try {
      await this.store.putDerived(rel, make, contentType);
    } catch (err) {
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
