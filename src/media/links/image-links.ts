import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { LinkSigner } from './link-signer';

/** `image.urls` (CONTRACT §3): signed, expiring links; `overlay` is null while the image has no result. */
export interface ImageUrls {
  file: string;
  thumbnail: string;
  overlay: string | null;
}

/**
 * Builds `image.urls` for images about to be returned. One query per call (not per image) tells which
 * of them have a current result.
 */
@Injectable()
export class ImageLinks {
  constructor(
    private readonly signer: LinkSigner,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  async urlsFor(imageIds: readonly number[], nowMs = Date.now()): Promise<Map<number, ImageUrls>> {
    const withResult = new Set<number>();
    if (imageIds.length > 0) {
      const rows = (await this.db.query(
        'SELECT image_id FROM segmentation_results WHERE is_current AND image_id = ANY($1::int[])',
        [imageIds],
      )) as Array<{ image_id: number }>;
      for (const r of rows) withResult.add(Number(r.image_id));
    }
    const out = new Map<number, ImageUrls>();
    for (const id of imageIds) out.set(id, this.build(id, withResult.has(id), nowMs));
    return out;
  }

  /**
   * `urls` of an image created just now, without a query: a new image has no result yet, so its
   * `overlay` is null (what {@link urlsFor} would answer).
   */
  urlsForNew(imageId: number, nowMs = Date.now()): ImageUrls {
    return this.build(imageId, false, nowMs);
  }

  private build(id: number, hasResult: boolean, nowMs: number): ImageUrls {
    return {
      file: this.signer.link(id, 'file', nowMs),
      thumbnail: this.signer.link(id, 'thumbnail', nowMs),
      overlay: hasResult ? this.signer.link(id, 'overlay', nowMs) : null,
    };
  }
}
