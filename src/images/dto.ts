import { ApiProperty } from '@nestjs/swagger';
import { PaginationQuery } from '../common/pagination.dto';
import { IMAGE_SEGMENTATION_STATUSES, ImageSegmentationStatus } from '../common/contracts';

/** `GET /api/images?page&limit`. */
export class ListImagesQuery extends PaginationQuery {}

/** `image.urls`: signed links that work without an Authorization header until `exp` (CONTRACT §3). */
export class ImageUrlsDto {
  @ApiProperty({ example: '/api/images/1/file?exp=1767225600&sig=…', description: 'the stored bytes' })
  file!: string;
  @ApiProperty({
    example: '/api/images/1/thumbnail?exp=1767225600&sig=…',
    description: 'WebP thumbnail; `&size=64..1024` may be added (not signed)',
  })
  thumbnail!: string;
  @ApiProperty({
    type: String,
    nullable: true,
    example: '/api/images/1/segmentation/overlay?exp=1767225600&sig=…',
    description: 'PNG with the current result drawn on it; null while the image has no result; `&size=64..4096` may be added',
  })
  overlay!: string | null;
}

/** The public `image` (CONTRACT §3). */
export class ImageDto {
  @ApiProperty() id!: number;
  @ApiProperty({
    description: 'file name the client sent, kept as metadata only (no path, at most 255 characters)',
  })
  originalName!: string;
  @ApiProperty({
    enum: ['image/png', 'image/jpeg', 'image/tiff', 'image/bmp'],
    description: 'detected from the content',
  })
  mimeType!: string;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty() width!: number;
  @ApiProperty() height!: number;
  @ApiProperty({ enum: IMAGE_SEGMENTATION_STATUSES }) segmentationStatus!: ImageSegmentationStatus;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: ImageUrlsDto, description: 'signed links, valid FILE_URL_TTL_SECONDS' }) urls!: ImageUrlsDto;
}

export class ImageListDto {
  @ApiProperty({ type: [ImageDto] }) items!: ImageDto[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() limit!: number;
}

/** The contract's error body; one schema (`ErrorBody`) for every route. */
export { ErrorBody as ErrorDto } from '../common/api-docs';
