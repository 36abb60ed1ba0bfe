import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { ImageEntity } from '../images/image.entity';
import { ImagesService } from '../images/images.service';
import type { ResultPolygon } from '../segmentation/result.entity';
import { ObjectStore } from '../storage/object-store';
import { DerivedFileGoneError, DerivedFiles } from './derived-files';
import { ImageRenderer, RenderSource, fitInside } from './image-renderer';

export const THUMBNAIL_SIZE = { min: 64, max: 1024, default: 256 } as const;
export const OVERLAY_SIZE = { min: 64, max: 4096, default: 1024 } as const;

const overlayName = (resultId: number, longest: number) => `overlay-r${resultId}-${longest}.png`;

interface CurrentResult {
  id: number;
  imageWidth: number;
  imageHeight: number;
  polygons: ResultPolygon[];
}

/**
 * The image variants: which image a request may see, and the derived files (thumbnail per image and
 * effective size; overlay per result and size, so a new result gets new overlays and the old ones are
 * pruned). Every variant goes when the image is deleted (ImageStorage.remove takes the original and
 * its variants directory). Files are read and written through the ObjectStore (STORAGE_DRIVER).
 */
@Injectable()
export class MediaService {
  constructor(
    private readonly images: ImagesService,
    private readonly store: ObjectStore,
    private readonly derived: DerivedFiles,
    private readonly renderer: ImageRenderer,
    @InjectRepository(ImageEntity) private readonly repo: Repository<ImageEntity>,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  /** Path (relative to UPLOAD_DIR) of the WebP thumbnail, made on first request. */
  async thumbnail(image: ImageEntity, requested: number): Promise<string> {
    const { width, height } = fitInside(image.width, image.height, requested);
    const longest = Math.max(width, height);
    return this.ensure(image, `thumb-${longest}.webp`, 'image/webp', (tmp) =>
      this.withSource(image, (src) => this.renderer.thumbnail(src, longest, tmp)),
    );
  }

  /** Path of the overlay PNG of the current result at this size; 404 without a result. */
  async overlay(image: ImageEntity, requested: number): Promise<string> {
    const result = await this.currentResult(image.id);
    if (!result) throw new NotFoundException('the image has no segmentation result');
    const { width, height } = fitInside(image.width, image.height, requested);
    const longest = Math.max(width, height);
    const name = overlayName(result.id, longest);
    const { rel, created } = await this.ensureFile(image, name, 'image/png', (tmp) =>
      this.withSource(image, (src) =>
        this.renderer.overlay(
          src,
          result.polygons,
          { width: result.imageWidth || image.width, height: result.imageHeight || image.height },
          longest,
          tmp,
        ),
      ),
    );
    // Overlays of results that are no longer current are never served again (looked for when a new
    // overlay is made: the old result's overlays were all made before it).
    if (created) {
      await this.derived.prune(image.storagePath, (n) => !n.startsWith('overlay-') || n.startsWith(`overlay-r${result.id}-`));
    }
    return rel;
  }

  private async ensure(
    image: ImageEntity,
    name: string,
    contentType: string,
    make: (tmp: string) => Promise<void>,
  ): Promise<string> {
    return (await this.ensureFile(image, name, contentType, make)).rel;
  }

  private async ensureFile(
    image: ImageEntity,
    name: string,
    contentType: string,
    make: (tmp: string) => Promise<void>,
  ): Promise<{ rel: string; created: boolean }> {
    const stillThere = async () => (await this.repo.existsBy({ id: image.id })) as boolean;
    try {
      return await this.derived.ensure(image.storagePath, name, contentType, make, stillThere);
    } catch (err) {
      if (err instanceof DerivedFileGoneError || !(await stillThere()))
        throw new NotFoundException('image not found');
      throw err;
    }
  }

  /** Runs `fn` on the stored original (a local file: the stored one, or a scratch copy with `s3`). */
  private withSource(image: ImageEntity, fn: (src: RenderSource) => Promise<void>): Promise<void> {
    return this.store.withLocalFile(image.storagePath, (absPath) =>
      fn({ absPath, mimeType: image.mimeType, width: image.width, height: image.height }),
    );
  }

  private async currentResult(imageId: number): Promise<CurrentResult | null> {
    const rows = (await this.db.query(
      `SELECT id, image_width, image_height, polygons FROM segmentation_results WHERE image_id = $1 AND is_current LIMIT 1`,
      [imageId],
    )) as Array<{ id: number; image_width: number; image_height: number; polygons: ResultPolygon[] }>;
    const r = rows[0];
    return r
      ? {
          id: Number(r.id),
          imageWidth: r.image_width,
          imageHeight: r.image_height,
          polygons: r.polygons ?? [],
        }
      : null;
  }
}
