import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { IMAGE_SEGMENTATION_STATUSES, ImageSegmentationStatus } from '../common/contracts';

const MAX_INT4 = 2_147_483_647;

export class ListImagesQuery {
  @ApiPropertyOptional({ default: 1, minimum: 1 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_INT4)
  page = 1;

  @ApiPropertyOptional({ default: 20, minimum: 1, maximum: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit = 20;
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
}

export class ImageListDto {
  @ApiProperty({ type: [ImageDto] }) items!: ImageDto[];
  @ApiProperty() total!: number;
  @ApiProperty() page!: number;
  @ApiProperty() limit!: number;
}

export class ErrorDto {
  @ApiProperty() statusCode!: number;
  @ApiProperty() error!: string;
  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] }) message!:
    string | string[];
}
