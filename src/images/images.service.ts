import { Injectable, Logger, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Readable } from 'node:stream';
import { In, Repository } from 'typeorm';
import { ImageEntity } from './image.entity';
import { ImageInspector } from './image-inspector';
import { ImageStorage, StagedFile, StoredFile, tooLarge } from './image-storage';
import { sanitizeOriginalName } from './original-name';
import { PreparedQueries } from '../database/prepared-queries';

/** One statement, autocommit (TypeORM's save() costs BEGIN + INSERT + COMMIT: three round trips). */
const INSERT_IMAGE = `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
  VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`;

/** Runs before an image row is deleted (e.g. to cancel its open segmentation task). */
export type BeforeDeleteHook = (image: ImageEntity) => Promise<void>;

/** Runs after an image row and its file are gone (e.g. to remove its derived files). */
export type AfterDeleteHook = (image: ImageEntity) => Promise<void>;

/** An uploaded file as the controller hands it over (independent of the multipart library). */
export interface IncomingUpload {
  stream: Readable;
  /** Client-supplied name; metadata only. */
  filename?: string;
  /** True when the transport cut the stream at its size limit (checked after the stream ends). */
  truncated(): boolean;
  /** The byte cap the transport enforces; used in the 413 message. */
  maxBytes: number;
}

const MAX_INT4 = 2_147_483_647;
const isDbId = (id: number): boolean => Number.isInteger(id) && id >= 1 && id <= MAX_INT4;

/**
 * Images: upload (stream → stage → inspect → commit → row), listing, ownership checks and deletion.
 *
 * Deletion hooks: other modules register `onBeforeDelete(fn)` (the segmentation module cancels the
 * image's queued/processing task there). On `DELETE /images/:id` every hook runs, in registration
 * order, after the ownership check and before the row is deleted; a hook that throws aborts the delete
 * (nothing is removed). The row delete cascades to the image's tasks and results (FK ON DELETE
 * CASCADE); the file and every variant are removed last (ImageStorage.remove), and a failure to remove
 * them is logged, not returned (with `s3` the storage sweeper retries it).
 */
@Injectable()
export class ImagesService {
  private readonly logger = new Logger(ImagesService.name);
  private readonly beforeDelete: BeforeDeleteHook[] = [];
  private readonly afterDelete: AfterDeleteHook[] = [];

  constructor(
    @InjectRepository(ImageEntity) private readonly repo: Repository<ImageEntity>,
    private readonly storage: ImageStorage,
    private readonly inspector: ImageInspector,
    private readonly prepared: PreparedQueries,
  ) {}

  /** Registers a hook run before every image deletion; returns a function that unregisters it. */
  onBeforeDelete(fn: BeforeDeleteHook): () => void {
    this.beforeDelete.push(fn);
    return () => {
      const i = this.beforeDelete.indexOf(fn);
      if (i >= 0) this.beforeDelete.splice(i, 1);
    };
  }

  /** Registers a hook run after every image deletion (failures are logged, not returned). */
  onAfterDelete(fn: AfterDeleteHook): void {
    this.afterDelete.push(fn);
  }

  /**
   * Stores an upload for `userId`. 413 over the byte or pixel limit, 415 for anything but PNG, JPEG,
   * TIFF or BMP (by content), 400 when it does not decode. On any failure no file and no row remain.
   */
  async upload(userId: number, file: IncomingUpload): Promise<ImageEntity> {
    const staged: StagedFile = await this.storage.stage(file.stream);
    if (file.truncated()) {
      await this.storage.discard(staged);
      throw tooLarge(file.maxBytes);
    }
    return this.accept(userId, staged, file.filename);
  }

  /**
   * Inspects a staged upload and, when it is an image we accept, moves it to its permanent path and
   * records its row; on any failure the staged (or moved) file is deleted and nothing is recorded.
   */
  async accept(userId: number, staged: StagedFile, filename: string | undefined): Promise<ImageEntity> {
    let stored: StoredFile;
    let info;
    try {
      info = await this.inspector.inspect(staged.data ?? staged.tempPath);
      stored = await this.storage.commit(staged, info.ext, new Date(), info.mime);
    } catch (err) {
      await this.storage.discard(staged);
      throw err;
    }
    try {
      const [r] = await this.prepared.rows(INSERT_IMAGE, [
        userId,
        sanitizeOriginalName(filename, `image.${info.ext}`),
        stored.storagePath,
        info.mime,
        stored.bytes,
        info.width,
        info.height,
      ]);
      return this.repo.create({
        id: r.id as number,
        userId: r.user_id as number,
        originalName: r.original_name as string,
        storagePath: r.storage_path as string,
        mimeType: r.mime_type as string,
        sizeBytes: Number(r.size_bytes),
        width: r.width as number,
        height: r.height as number,
        segmentationStatus: r.segmentation_status as ImageEntity['segmentationStatus'],
        createdAt: r.created_at as Date,
        updatedAt: r.updated_at as Date,
      });
    } catch (err) {
      await this.storage.remove(stored.storagePath).catch(() => undefined);
      throw err;
    }
  }

  /** Own images, newest first. */
  async list(userId: number, page: number, limit: number): Promise<{ items: ImageEntity[]; total: number }> {
    const [items, total] = await this.repo.findAndCount({
      where: { userId },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (page - 1) * limit,
      take: limit,
    });
    return { items, total };
  }

  /** The image if it exists and belongs to `userId`; 404 otherwise (the two cases look the same). */
  async findOwned(userId: number, id: number): Promise<ImageEntity> {
    const image = isDbId(id) ? await this.repo.findOneBy({ id, userId }) : null;
    if (!image) throw new NotFoundException('image not found');
    return image;
  }

  /** How many of `ids` (distinct) exist and belong to `userId`. */
  async countOwned(userId: number, ids: number[]): Promise<number> {
    const valid = [...new Set(ids)].filter(isDbId);
    if (valid.length === 0) return 0;
    return this.repo.countBy({ userId, id: In(valid) });
  }

  /** Deletes an own image: hooks, then the row (cascading to tasks and results), then the file. */
  async delete(userId: number, id: number): Promise<void> {
    const image = await this.findOwned(userId, id);
    for (const hook of [...this.beforeDelete]) await hook(image);
    const res = await this.repo.delete({ id: image.id, userId });
    if (!res.affected) throw new NotFoundException('image not found'); // deleted concurrently
    try {
      await this.storage.remove(image.storagePath);
    } catch (err) {
      this.logger.warn(
        { imageId: image.id, err: (err as Error).message },
        'image row deleted but its file could not be removed',
      );
    }
    for (const hook of [...this.afterDelete]) {
      await hook(image).catch((err: Error) =>
        this.logger.warn({ imageId: image.id, err: err.message }, 'an after-delete hook failed'),
      );
    }
  }
}
