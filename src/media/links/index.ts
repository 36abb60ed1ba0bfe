export { MediaLinksModule } from './media-links.module';
export { ImageLinks, ImageUrls } from './image-links';
export { LinkSigner, MediaVariant, MEDIA_VARIANTS, variantPath } from './link-signer';
