import {
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Inject,
  Param,
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
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe } from '../common/input-rules';
import type { FastifyRequest } from 'fastify';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { uploadsConfig } from '../config/configuration';
import { ErrorDto, ImageDto, ImageListDto, ListImagesQuery } from './dto';
import { ImageEntity, toImageView, ImageView } from './image.entity';
import { ImageStorage } from './image-storage';
import { FILE_FIELD, receiveUpload } from './multipart-upload';
import { ImagesService } from './images.service';
import { ImageLinks } from '../media/links/image-links';

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ImagesController {
  constructor(
    private readonly images: ImagesService,
    private readonly storage: ImageStorage,
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
  @ApiDoc('Upload an image (PNG, JPEG, TIFF or BMP)', { ...AUTHED })
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
    const { staged, filename } = await receiveUpload(req.raw, {
      maxBytes: this.uploads.maxBytes,
      stage: (source, maxBytes) => this.storage.stage(source, maxBytes),
      discard: (f) => this.storage.discard(f),
    });
    const image = await this.images.accept(user.id, staged, filename);
    // Just created: it cannot have a segmentation result yet, so no query for one.
    return toImageView(image, this.links.urlsForNew(image.id));
  }

  @Get()
  @ApiDoc('List own images, newest first', { ...AUTHED })
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
  @ApiDoc('Get an image', { ...AUTHED, 400: true })
  @ApiOkResponse({ type: ImageDto })
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not the caller’s' })
  async get(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) id: number): Promise<ImageView> {
    return (await this.views([await this.images.findOwned(user.id, id)]))[0];
  }

  /** Cancels the image's open segmentation task, deletes the row (its tasks and results go with it) and the file. */
  @Delete(':id')
  @ApiDoc('Delete an image, its task, file and results', { ...AUTHED, 400: true })
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not the caller’s' })
  async remove(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) id: number): Promise<void> {
    await this.images.delete(user.id, id);
  }
}
