import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { OVERLAY_SIZE, THUMBNAIL_SIZE } from './media.service';

/** `exp` and `sig` of a signed link (`image.urls`); not needed with a Bearer token. */
export class SignedLinkQuery {
  @ApiPropertyOptional({ description: 'signed link: expiry, Unix seconds', example: 1767225600 })
  @IsOptional()
  @IsString()
  exp?: string;

  @ApiPropertyOptional({ description: 'signed link: HMAC of image id, variant and exp (base64url)' })
  @IsOptional()
  @IsString()
  sig?: string;
}

export class ThumbnailQuery extends SignedLinkQuery {
  @ApiPropertyOptional({
    minimum: THUMBNAIL_SIZE.min,
    maximum: THUMBNAIL_SIZE.max,
    default: THUMBNAIL_SIZE.default,
    description: 'longest side in pixels (never larger than the image)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(THUMBNAIL_SIZE.min)
  @Max(THUMBNAIL_SIZE.max)
  size: number = THUMBNAIL_SIZE.default;
}

export class OverlayQuery extends SignedLinkQuery {
  @ApiPropertyOptional({
    minimum: OVERLAY_SIZE.min,
    maximum: OVERLAY_SIZE.max,
    default: OVERLAY_SIZE.default,
    description: 'longest side at most this many pixels (never larger than the image)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(OVERLAY_SIZE.min)
  @Max(OVERLAY_SIZE.max)
  size: number = OVERLAY_SIZE.default;
}
