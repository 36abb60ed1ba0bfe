import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsDefined, IsIn, IsInt, Max, Min, ValidateIf } from 'class-validator';
import { MAX_INT4, OptionalField } from '../common/input-rules';
import { PaginationQuery } from '../common/pagination.dto';
import { IMAGE_SEGMENTATION_STATUSES, ImageSegmentationStatus } from '../common/contracts';

/** `GET /api/images?page&limit`. */
export class ListImagesQuery extends PaginationQuery {}

/** `GET /api/projects/:id/images?page&limit&status`. */
export class ListProjectImagesQuery extends PaginationQuery {
  @ApiPropertyOptional({
    enum: IMAGE_SEGMENTATION_STATUSES,
    type: 'string',
    description: 'only images with this segmentationStatus',
  })
  @OptionalField()
  @IsIn(IMAGE_SEGMENTATION_STATUSES as unknown as string[])
  status?: ImageSegmentationStatus;
}

/** `PATCH /api/images/:id`: the project to move the image into, or null for the caller's personal images. */
export class MoveImageDto {
  @ApiProperty({
    type: 'integer',
    nullable: true,
    minimum: 1,
    maximum: MAX_INT4,
    description: 'target project; null: the caller’s personal images',
  })
  @IsDefined({ message: 'projectId is required (a project id, or null for the personal images)' })
  @ValidateIf((_o, v) => v !== null)
  @IsInt()
  @Min(1)
  @Max(MAX_INT4)
  projectId!: number | null;
}

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
    description:
      'PNG with the current result drawn on it; null while the image has no result; `&size=64..4096` may be added',
  })
  overlay!: string | null;
}

/** The public `image` (CONTRACT §3). */
export class ImageDto {
  @ApiProperty() id!: number;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    description: 'the image’s project; null for a personal image',
  })
  projectId!: number | null;
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
  @ApiProperty({ type: ImageUrlsDto, description: 'signed links, valid FILE_URL_TTL_SECONDS' })
  urls!: ImageUrlsDto;
}

export class ImageListDto {
  @ApiProperty({ type: [ImageDto] }) items!: ImageDto[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() limit!: number;
}

/** The contract's error body; one schema (`ErrorBody`) for every route. */
export { ErrorBody as ErrorDto } from '../common/api-docs';
