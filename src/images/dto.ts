import { ApiProperty } from '@nestjs/swagger';
import { PaginationQuery } from '../common/pagination.dto';
import { IMAGE_SEGMENTATION_STATUSES, ImageSegmentationStatus } from '../common/contracts';

/** `GET /api/images?page&limit`. */
export class ListImagesQuery extends PaginationQuery {}

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
}

export class ImageListDto {
  @ApiProperty({ type: [ImageDto] }) items!: ImageDto[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() limit!: number;
}

/** The contract's error body; one schema (`ErrorBody`) for every route. */
export { ErrorBody as ErrorDto } from '../common/api-docs';
