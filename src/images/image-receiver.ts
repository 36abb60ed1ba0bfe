import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { FastifyRequest } from 'fastify';
import { uploadsConfig } from '../config/configuration';
import { ImageLinks } from '../media/links/image-links';
import { ImageEntity, ImageView, toImageView } from './image.entity';
import { ImageStorage } from './image-storage';
import { ImagesService } from './images.service';
import { receiveUpload } from './multipart-upload';

/** Upload and view code shared by the personal and the project image routes. */
@Injectable()
export class ImageReceiver {
  constructor(
    private readonly images: ImagesService,
    private readonly storage: ImageStorage,
    @Inject(uploadsConfig.KEY) private readonly uploads: ConfigType<typeof uploadsConfig>,
    private readonly links: ImageLinks,
  ) {}

  /** Public views with their signed `urls`. */
  async views(images: ImageEntity[]): Promise<ImageView[]> {
    const urls = await this.links.urlsFor(images.map((i) => i.id));
    return images.map((i) => toImageView(i, urls.get(i.id)!));
  }

  /** Receives a multipart upload and records it for `userId` (personal, or in `projectId`). */
  async receive(userId: number, req: FastifyRequest, projectId: number | null): Promise<ImageView> {
    const { staged, filename } = await receiveUpload(req.raw, {
      maxBytes: this.uploads.maxBytes,
      stage: (source, maxBytes) => this.storage.stage(source, maxBytes),
      discard: (f) => this.storage.discard(f),
    });
    const image = await this.images.accept(userId, staged, filename, projectId);
    // Just created: it cannot have a segmentation result yet, so no query for one.
    return toImageView(image, this.links.urlsForNew(image.id));
  }
}
