import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { ImagesModule } from '../images/images.module';
import { DerivedFiles } from './derived-files';
import { FileSender } from './file-sender';
import { ImageRenderer } from './image-renderer';
import { MediaLinksModule } from './links/media-links.module';
import { MediaAccessGuard } from './media-access.guard';
import { MediaController } from './media.controller';
import { MediaService } from './media.service';

/**
 * `GET /api/images/:id/{file,thumbnail,segmentation/overlay}`: the stored file, thumbnails and
 * overlays, with Bearer or signed-link access, derived files beside the original (removed with it).
 * Serving roles only. Exports nothing: `image.urls` comes from MediaLinksModule.
 */
@Module({
  imports: [ImagesModule, AuthModule, MediaLinksModule],
  controllers: [MediaController],
  providers: [DerivedFiles, FileSender, ImageRenderer, MediaService, MediaAccessGuard],
})
export class MediaModule {}
