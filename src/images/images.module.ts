import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ImageEntity } from './image.entity';
import { ImageInspector } from './image-inspector';
import { ImageStorage } from './image-storage';
import { ImagesController, ProjectImagesController } from './images.controller';
import { ImagesService } from './images.service';
import { ImageReceiver } from './image-receiver';
import { MediaLinksModule } from '../media/links/media-links.module';

/**
 * `/api/images`: upload, list, read, delete. Exports ImagesService (ownership checks, status updates,
 * the before-delete hook registry), ImageStorage (uploads into the ObjectStore) and ImageInspector.
 * Needs the bootstrap to call `registerMultipartPassthrough` (the upload route reads its body itself).
 */
@Module({
  imports: [TypeOrmModule.forFeature([ImageEntity]), MediaLinksModule],
  controllers: [ImagesController, ProjectImagesController],
  providers: [ImageStorage, ImageInspector, ImagesService, ImageReceiver],
  exports: [ImagesService, ImageStorage, ImageInspector, TypeOrmModule],
})
export class ImagesModule {}
