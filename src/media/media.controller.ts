import { Controller, Get, Param, Query, Req, Res, UseGuards, applyDecorators } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiHeader,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { create as contentDisposition } from 'content-disposition';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '../common/public.decorator';
import { ApiErrors } from '../common/api-docs';
import { OverlayQuery, SignedLinkQuery, ThumbnailQuery } from './dto';
import { FileSender } from './file-sender';
import { MediaAccessGuard, MediaRequest, ServesVariant } from './media-access.guard';
import { Access, Granted, On } from '../access';
import { ImageEntity } from '../images/image.entity';
import { MediaService } from './media.service';
import { ParseIntIdPipe } from '../common/input-rules';

const binary = (types: string[], description: string) => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema: { type: 'string', format: 'binary' } }])),
});
const STORED_TYPES = ['image/png', 'image/jpeg', 'image/tiff', 'image/bmp'];
const cacheHeaders = {
  ETag: { description: 'entity tag; send it back in If-None-Match for a 304', schema: { type: 'string' } },
  'Cache-Control': { description: 'always `private`', schema: { type: 'string', example: 'private' } },
};

/** OpenAPI shared by the three variant routes. */
const VariantDocs = () =>
  applyDecorators(
    ApiBearerAuth(),
    ApiParam({ name: 'id', description: 'image id (decimal integer)', type: Number }),
    ApiResponse({ status: 304, description: 'If-None-Match matched the ETag' }),
    ApiErrors({
      400: 'malformed id or size',
      401: 'no valid Bearer and no valid, unexpired signed link for this image and variant',
      404: 'no such image, or (with a Bearer) not visible to the caller',
      429: true,
      503: true,
    }),
  );

/**
 * The three variants of an image (CONTRACT §3): the stored file, a WebP thumbnail, the PNG overlay of
 * the current result. Reachable with a Bearer token or with the signed link of `image.urls` (no
 * Authorization header, so `<img src>` works); see MediaAccessGuard.
 */
@ApiTags('images')
@Public()
@UseGuards(MediaAccessGuard)
@Controller('images')
export class MediaController {
  constructor(
    private readonly media: MediaService,
    private readonly files: FileSender,
  ) {}

  @Get(':id/file')
  @ServesVariant('file')
  @Access(On.image('view', { link: true }))
  @ApiOperation({
    summary: 'The uploaded bytes as stored',
    description:
      'Streamed with the stored Content-Type, Content-Length, ETag, `Cache-Control: private` and `Content-Disposition: inline` with the original name (RFC 6266). Range → 206, unsatisfiable → 416, If-None-Match → 304.',
  })
  @ApiProduces('image/png', 'image/jpeg', 'image/tiff', 'image/bmp')
  @ApiHeader({ name: 'Range', required: false, description: 'one byte range, e.g. `bytes=0-99`' })
  @ApiResponse({ status: 200, ...binary(STORED_TYPES, 'the file'), headers: cacheHeaders })
  @ApiResponse({ status: 206, ...binary(STORED_TYPES, 'the requested byte range') })
  @ApiErrors({ 416: 'range not satisfiable (Content-Range: bytes */size)' })
  @VariantDocs()
  async file(
    @Param('id', ParseIntIdPipe) _id: number,
    @Query() _q: SignedLinkQuery,
    @Req() req: FastifyRequest & MediaRequest,
    @Res() reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ): Promise<FastifyReply> {
    return this.files.send(req, reply, image.storagePath, {
      contentType: image.mimeType,
      disposition: contentDisposition(image.originalName, { type: 'inline' }),
    });
  }

  @Get(':id/thumbnail')
  @ServesVariant('thumbnail')
  @Access(On.image('view', { link: true }))
  @ApiOperation({
    summary: 'WebP thumbnail (any accepted format, TIFF and BMP included)',
    description:
      'Longest side = `size` (64..1024, default 256), never larger than the image, aspect kept. Made once per image and size, then served from storage; ETag and 304 as for the file.',
  })
  @ApiProduces('image/webp')
  @ApiResponse({ status: 200, ...binary(['image/webp'], 'the thumbnail'), headers: cacheHeaders })
  @VariantDocs()
  async thumbnail(
    @Param('id', ParseIntIdPipe) _id: number,
    @Query() q: ThumbnailQuery,
    @Req() req: FastifyRequest & MediaRequest,
    @Res() reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ): Promise<FastifyReply> {
    const rel = await this.media.thumbnail(image, q.size);
    return this.files.send(req, reply, rel, { contentType: 'image/webp' });
  }

  @Get(':id/segmentation/overlay')
  @ServesVariant('overlay')
  @Access(On.image('view', { link: true }))
  @ApiOperation({
    summary: 'PNG of the image with the current result drawn on it',
    description:
      'Spheroid outlines and holes in two colours, lines at least 2 px wide; longest side at most `size` (64..4096, default 1024). Made once per result and size; a new result gets a new overlay. 404 while the image has no result.',
  })
  @ApiProduces('image/png')
  @ApiResponse({ status: 200, ...binary(['image/png'], 'the overlay'), headers: cacheHeaders })
  @VariantDocs()
  async overlay(
    @Param('id', ParseIntIdPipe) _id: number,
    @Query() q: OverlayQuery,
    @Req() req: FastifyRequest & MediaRequest,
    @Res() reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ): Promise<FastifyReply> {
    const rel = await this.media.overlay(image, q.size);
    return this.files.send(req, reply, rel, { contentType: 'image/png' });
  }
}
