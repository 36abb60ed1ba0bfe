import {
  BadRequestException,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpException,
  HttpStatus,
  Inject,
  Param,
  ParseIntPipe,
  Post,
  Query,
  Req,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiBody,
  ApiConsumes,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiPayloadTooLargeResponse,
  ApiTags,
  ApiUnsupportedMediaTypeResponse,
} from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { uploadsConfig } from '../config/configuration';
import { ErrorDto, ImageDto, ImageListDto, ListImagesQuery } from './dto';
import { ImageEntity, toImageView, ImageView } from './image.entity';
import { tooLarge } from './image-storage';
import { ImagesService } from './images.service';
import { ImageLinks } from '../media/links/image-links';

const FILE_FIELD = 'file';
const NOT_MULTIPART = `file is required: send the image as multipart/form-data in a field named "${FILE_FIELD}"`;

/** Multipart/busboy failures → contract errors; anything else is passed on unchanged. */
function multipartError(err: unknown, maxBytes: number): unknown {
  if (err instanceof HttpException) return err;
  const e = err as { code?: string; statusCode?: number; message?: string } | undefined;
  switch (e?.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return tooLarge(maxBytes);
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new BadRequestException(NOT_MULTIPART);
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new BadRequestException(`too many parts: send a single file in the field "${FILE_FIELD}"`);
    case 'FST_PROTO_VIOLATION':
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new BadRequestException('malformed multipart body');
  }
  // @fastify/busboy parse errors carry no code ("Multipart: Boundary not found", "Unexpected end of form", ...).
  if (typeof e?.message === 'string' && /multipart|boundary|part|unexpected end|malformed/i.test(e.message)) {
    return new BadRequestException('malformed multipart body');
  }
  return err;
}

const drain = (part: MultipartFile) =>
  pipeline(part.file, new Writable({ write: (_c, _e, cb) => cb() })).catch(() => undefined);

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ImagesController {
  constructor(
    private readonly images: ImagesService,
    @Inject(uploadsConfig.KEY) private readonly uploads: ConfigType<typeof uploadsConfig>,
    private readonly links: ImageLinks,
  ) {}

  /** Public views with their signed `urls`. */
  private async views(images: ImageEntity[]): Promise<ImageView[]> {
    const urls = await this.links.urlsFor(images.map((i) => i.id));
    return images.map((i) => toImageView(i, urls.get(i.id)!));
  }

  /**
   * Multipart upload, one file in the field `file`. The type is decided from the content (PNG, JPEG,
   * TIFF, BMP); the file name is kept as metadata only and the stored name is generated.
   */
  @Post()
  @HttpCode(HttpStatus.CREATED)
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    schema: {
      type: 'object',
      required: [FILE_FIELD],
      properties: {
        [FILE_FIELD]: { type: 'string', format: 'binary', description: 'PNG, JPEG, TIFF or BMP' },
      },
    },
  })
  @ApiCreatedResponse({ type: ImageDto })
  @ApiBadRequestResponse({
    type: ErrorDto,
    description: 'no `file` field, not multipart, or the image does not decode',
  })
  @ApiPayloadTooLargeResponse({
    type: ErrorDto,
    description: 'over MAX_UPLOAD_BYTES, or over MAX_IMAGE_PIXELS (width × height)',
  })
  @ApiUnsupportedMediaTypeResponse({ type: ErrorDto, description: 'content is not PNG, JPEG, TIFF or BMP' })
  async upload(@CurrentUser() user: AuthUser, @Req() req: FastifyRequest): Promise<ImageView> {
    const maxBytes = this.uploads.maxBytes;
    if (typeof req.isMultipart !== 'function' || !req.isMultipart())
      throw new BadRequestException(NOT_MULTIPART);
    let part: MultipartFile | undefined;
    try {
      part = await req.file();
    } catch (err) {
      throw multipartError(err, maxBytes);
    }
    if (!part) throw new BadRequestException(NOT_MULTIPART);
    if (part.fieldname !== FILE_FIELD) {
      await drain(part);
      throw new BadRequestException(
        `file is required: the image must be sent in the field "${FILE_FIELD}", not "${part.fieldname.slice(0, 64)}"`,
      );
    }
    const file = part.file;
    try {
      const image = await this.images.upload(user.id, {
        stream: file,
        filename: part.filename,
        truncated: () => file.truncated === true,
        maxBytes,
      });
      return (await this.views([image]))[0];
    } catch (err) {
      throw multipartError(err, maxBytes);
    }
  }

  @Get()
  @ApiOkResponse({ type: ImageListDto, description: 'own images, newest first' })
  @ApiBadRequestResponse({ type: ErrorDto })
  async list(
    @CurrentUser() user: AuthUser,
    @Query() q: ListImagesQuery,
  ): Promise<{ items: ImageView[]; total: number; page: number; limit: number }> {
    const { items, total } = await this.images.list(user.id, q.page, q.limit);
    return { items: await this.views(items), total, page: q.page, limit: q.limit };
  }

  @Get(':id')
  @ApiOkResponse({ type: ImageDto })
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not the caller’s' })
  async get(@CurrentUser() user: AuthUser, @Param('id', ParseIntPipe) id: number): Promise<ImageView> {
    return (await this.views([await this.images.findOwned(user.id, id)]))[0];
  }

  /** Cancels the image's open segmentation task, deletes the row (its tasks and results go with it) and the file. */
  @Delete(':id')
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not the caller’s' })
  async remove(@CurrentUser() user: AuthUser, @Param('id', ParseIntPipe) id: number): Promise<void> {
    await this.images.delete(user.id, id);
  }
}
