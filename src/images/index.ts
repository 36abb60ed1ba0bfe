export { ImageEntity, ImageView, toImageView } from './image.entity';
export { ImagesModule } from './images.module';
export { ImagesService, BeforeDeleteHook, AfterDeleteHook, IncomingUpload } from './images.service';
export { ImageStorage, StagedFile, StoredFile, StoragePathError } from './image-storage';
export { ImageInspector, ImageInfo, parseBmpHeader } from './image-inspector';
export { sanitizeOriginalName } from './original-name';
