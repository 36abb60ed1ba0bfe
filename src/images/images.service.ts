import { Injectable, Logger, NotFoundException, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Readable } from 'node:stream';
import { In, IsNull, Repository } from 'typeorm';
import { ImageEntity } from './image.entity';
import { ImageInspector } from './image-inspector';
import { ImageStorage, StagedFile, StoredFile, tooLarge } from './image-storage';
import { sanitizeOriginalName } from './original-name';
import { PreparedQueries } from '../database/prepared-queries';
import { AccessPolicy, AccessSubject } from '../access';
import type { ImageSegmentationStatus } from '../common/contracts';
import { StatementBatcher } from '../common/statement-batcher';

/**
 * One statement, autocommit (TypeORM's save() costs BEGIN + INSERT + COMMIT: three round trips). Into a
 * project only while the project is not being deleted (no row otherwise: 404).
 */
const INSERT_IMAGE = `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height, project_id)
  SELECT $1, $2, $3, $4, $5, $6, $7, $8::int
   WHERE $8::int IS NULL OR EXISTS (SELECT 1 FROM projects p WHERE p.id = $8::int AND p.deleting_at IS NULL)
  RETURNING *`;
/**
 * The access loader's read (the route's one read of the image), for the ids of concurrent requests at
 * once; an image of a project being deleted is gone.
 */
const SELECT_IMAGES = `SELECT i.* FROM images i WHERE i.id = ANY($1::int[])
  AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.id = i.project_id AND p.deleting_at IS NOT NULL)`;

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
export class ImagesService implements OnModuleInit {
  private readonly logger = new Logger(ImagesService.name);
  private readonly beforeDelete: BeforeDeleteHook[] = [];
  private readonly afterDelete: AfterDeleteHook[] = [];
  /**
   * The access reads of concurrent requests (any users, any image routes) share one prepared statement
   * while the previous one is at PostgreSQL; a read always leaves after it was asked for, so it sees
   * every earlier commit (as TaskStore's task reads).
   */
  private readonly accessReads = new StatementBatcher<number, ImageEntity | null>(
    (ids) => this.findForAccessMany(ids),
    async (id) => (await this.findForAccessMany([id]))[0],
    { maxBatch: 200 },
  );

  constructor(
    @InjectRepository(ImageEntity) private readonly repo: Repository<ImageEntity>,
    private readonly storage: ImageStorage,
    private readonly inspector: ImageInspector,
    private readonly prepared: PreparedQueries,
    private readonly access: AccessPolicy,
  ) {}

  /** Images are found for the access rule here: one read, handed to the route (`@Granted('image')`). */
  onModuleInit(): void {
    this.access.registerLoader('image', async (id) => {
      const image = await this.accessReads.run(Number(id));
      return image && { subject: { ownerId: image.userId, projectId: image.projectId }, entity: image };
    });
    this.access.registerImagesLoader(async (ids) => {
      const rows = await this.prepared.rows<{ id: number; user_id: number; project_id: number | null }>(
        'SELECT id, user_id, project_id FROM images WHERE id = ANY($1::int[])',
        [ids],
      );
      return new Map<number, AccessSubject>(
        rows.map((r) => [r.id, { ownerId: r.user_id, projectId: r.project_id }]),
      );
    });
  }

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
  async accept(
    userId: number,
    staged: StagedFile,
    filename: string | undefined,
    projectId: number | null = null,
  ): Promise<ImageEntity> {
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
        projectId,
      ]);
      if (!r) throw new NotFoundException('project not found'); // deleted meanwhile
      return this.fromRow(r);
    } catch (err) {
      await this.storage.remove(stored.storagePath).catch(() => undefined);
      throw err;
    }
  }

  /** One entity (or null) per id, in order; each row is its own entity, even for an id asked twice. */
  private async findForAccessMany(ids: number[]): Promise<Array<ImageEntity | null>> {
    const rows = await this.prepared.rows(SELECT_IMAGES, [[...new Set(ids)]]);
    const byId = new Map(rows.map((r) => [r.id as number, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      return r ? this.fromRow(r) : null;
    });
  }

  /** A raw `images` row as an entity. */
  private fromRow(r: Record<string, unknown>): ImageEntity {
    return this.repo.create({
      id: r.id as number,
      userId: r.user_id as number,
      projectId: (r.project_id as number | null) ?? null,
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
  }

  /** The caller's personal images (not those in projects), newest first. */
  async listPersonal(
    userId: number,
    page: number,
    limit: number,
  ): Promise<{ items: ImageEntity[]; total: number }> {
    const [items, total] = await this.repo.findAndCount({
      where: { userId, projectId: IsNull() },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (page - 1) * limit,
      take: limit,
    });
    return { items, total };
  }

  /** A project's images, newest first, optionally of one segmentation status. */
  async listProject(
    projectId: number,
    status: ImageSegmentationStatus | undefined,
    page: number,
    limit: number,
  ): Promise<{ items: ImageEntity[]; total: number }> {
    const [items, total] = await this.repo.findAndCount({
      where: { projectId, ...(status ? { segmentationStatus: status } : {}) },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (page - 1) * limit,
      take: limit,
    });
    return { items, total };
  }

  /**
   * Moves an image into a project (`projectId`) or, with null, to `callerId`'s personal images. The
   * access rule has checked both ends; a target project being deleted meanwhile is 404.
   */
  async move(image: ImageEntity, projectId: number | null, callerId: number): Promise<ImageEntity> {
    const rows = await this.prepared.rows(
      `UPDATE images SET project_id = $2::int, user_id = CASE WHEN $2::int IS NULL THEN $3 ELSE user_id END, updated_at = now()
        WHERE id = $1 AND ($2::int IS NULL OR EXISTS (SELECT 1 FROM projects p WHERE p.id = $2::int AND p.deleting_at IS NULL))
        RETURNING *`,
      [image.id, projectId, callerId],
    );
    if (!rows.length)
      throw new NotFoundException(projectId === null ? 'image not found' : 'project not found');
    return this.fromRow(rows[0]);
  }

  /** Up to `limit` images of a project in id order (the project sweeper's batches). */
  async imagesOfProject(projectId: number, limit: number): Promise<ImageEntity[]> {
    const rows = await this.prepared.rows('SELECT * FROM images WHERE project_id = $1 ORDER BY id LIMIT $2', [
      projectId,
      limit,
    ]);
    return rows.map((r) => this.fromRow(r));
  }

  /** Images uploaded by `userId` (personal or in projects), newest first. */
  async list(userId: number, page: number, limit: number): Promise<{ items: ImageEntity[]; total: number }> {
    const [items, total] = await this.repo.findAndCount({
      where: { userId },
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (page - 1) * limit,
      take: limit,
    });
    return { items, total };
  }

  /** Runs the before-delete hooks of an image (e.g. its open task is cancelled). */
  async beforeRemove(image: ImageEntity): Promise<void> {
    for (const hook of [...this.beforeDelete]) await hook(image);
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

  /** Deletes an image uploaded by `userId` (see remove). */
  async delete(userId: number, id: number): Promise<void> {
    await this.remove(await this.findOwned(userId, id));
  }

  /**
   * Deletes an image the caller was allowed to delete (AccessPolicy): hooks, then the row (cascading
   * to tasks and results), then the file and, in the after-delete hooks, every variant.
   */
  async remove(image: ImageEntity): Promise<void> {
    for (const hook of [...this.beforeDelete]) await hook(image);
    const res = await this.repo.delete({ id: image.id });
    if (!res.affected) throw new NotFoundException('image not found'); // deleted concurrently
    await this.removeFiles(image);
  }

  /** The file and (after-delete hooks) every variant of an image whose row is gone or going; idempotent. */
  async removeFiles(image: ImageEntity): Promise<void> {
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
