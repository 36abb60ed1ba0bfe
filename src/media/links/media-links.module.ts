import { Module } from '@nestjs/common';
import { ImageLinks } from './image-links';
import { LinkSigner } from './link-signer';

/**
 * Signed links to the image variants: the signer (also used by the media routes to check a link) and
 * `image.urls`. Depends on configuration and the database only, so the images module can import it
 * without a cycle with the media module.
 */
@Module({
  providers: [LinkSigner, ImageLinks],
  exports: [LinkSigner, ImageLinks],
})
export class MediaLinksModule {}
