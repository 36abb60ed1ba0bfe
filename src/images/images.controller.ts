import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Patch,
  Post,
  Query,
  Req,
} from '@nestjs/common';
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
import {
  ErrorDto,
  ImageDto,
  ImageListDto,
  ListImagesQuery,
  ListProjectImagesQuery,
  MoveImageDto,
} from './dto';
import { Access, Granted, On, OwnOnly } from '../access';
import { ImageEntity, ImageView } from './image.entity';
import { FILE_FIELD } from './multipart-upload';
import { ImagesService } from './images.service';
import { ImageReceiver } from './image-receiver';

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ImagesController {
  constructor(
    private readonly images: ImagesService,
    private readonly uploads: ImageReceiver,
  ) {}

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
  @OwnOnly()
  async upload(@CurrentUser() user: AuthUser, @Req() req: FastifyRequest): Promise<ImageView> {
    return this.uploads.receive(user.id, req, null);
  }

  @Get()
  @ApiDoc('List own personal images (not those in projects), newest first', { ...AUTHED })
  @ApiOkResponse({ type: ImageListDto, description: 'own personal images, newest first' })
  @ApiBadRequestResponse({ type: ErrorDto })
  @OwnOnly()
  async list(
    @CurrentUser() user: AuthUser,
    @Query() q: ListImagesQuery,
  ): Promise<{ items: ImageView[]; total: number; page: number; limit: number }> {
    const { items, total } = await this.images.listPersonal(user.id, q.page, q.limit);
    return { items: await this.uploads.views(items), total, page: q.page, limit: q.limit };
  }

  @Get(':id')
  @ApiDoc('Get an image (any member of its project; the uploader of a personal image)', {
    ...AUTHED,
    400: true,
  })
  @ApiOkResponse({ type: ImageDto })
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not visible to the caller' })
  @Access(On.image('view'))
  async get(
    @Param('id', ParseIntIdPipe) _id: number,
    @Granted('image') image: ImageEntity,
  ): Promise<ImageView> {
    return (await this.uploads.views([image]))[0];
  }

  /**
   * Moves an image into a project or (`projectId: null`) back to the caller's personal images: the
   * caller must be allowed to delete it where it is and to upload where it goes.
   */
  @Patch(':id')
  @ApiDoc('Move an image into a project, or out of it to the caller’s personal images', {
    ...AUTHED,
    400: true,
    403: 'the caller’s role does not allow deleting the image where it is or uploading where it goes',
    404: 'no such image or project, or not visible to the caller',
  })
  @ApiBody({ type: MoveImageDto })
  @ApiOkResponse({ type: ImageDto })
  @Access(On.image('edit'), On.project('edit', 'body', 'projectId', true))
  async move(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) _id: number,
    @Body() dto: MoveImageDto,
    @Granted('image') image: ImageEntity,
  ): Promise<ImageView> {
    return (await this.uploads.views([await this.images.move(image, dto.projectId, user.id)]))[0];
  }

  /** Cancels the image's open segmentation task, deletes the row (its tasks and results go with it) and the file. */
  @Delete(':id')
  @ApiDoc('Delete an image, its task, file and results (editor in a project)', {
    ...AUTHED,
    400: true,
    403: 'the caller is a viewer of the image’s project',
  })
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorDto, description: 'no such image, or not visible to the caller' })
  @Access(On.image('edit'))
  async remove(
    @Param('id', ParseIntIdPipe) _id: number,
    @Granted('image') image: ImageEntity,
  ): Promise<void> {
    await this.images.remove(image);
  }
}

/** The images of a project (CONTRACT §3 "Projects and sharing"): upload into it, list them. */
@ApiTags('projects')
@ApiBearerAuth()
@Controller('projects')
export class ProjectImagesController {
  constructor(
    private readonly images: ImagesService,
    private readonly uploads: ImageReceiver,
  ) {}

  @Post(':id/images')
  @ApiDoc('Upload an image into a project (editor)', {
    ...AUTHED,
    400: 'malformed id, no `file` field, not multipart, or the image does not decode',
    403: 'the caller is a viewer',
    404: 'no such project, or the caller is not a member',
    413: true,
    415: true,
  })
  @HttpCode(HttpStatus.CREATED)
  @ApiConsumes('multipart/form-data')
  @ApiBody({
    schema: {
      type: 'object',
      required: [FILE_FIELD],
      properties: { [FILE_FIELD]: { type: 'string', format: 'binary' } },
    },
  })
  @ApiCreatedResponse({ type: ImageDto })
  @Access(On.project('edit'))
  async upload(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) id: number,
    @Req() req: FastifyRequest,
  ): Promise<ImageView> {
    return this.uploads.receive(user.id, req, id);
  }

  @Get(':id/images')
  @ApiDoc('A project’s images, newest first (any member)', {
    ...AUTHED,
    400: true,
    404: 'no such project, or the caller is not a member',
  })
  @ApiOkResponse({ type: ImageListDto })
  @Access(On.project('view'))
  async list(@Param('id', ParseIntIdPipe) id: number, @Query() q: ListProjectImagesQuery) {
    const { items, total } = await this.images.listProject(id, q.status, q.page, q.limit);
    return { items: await this.uploads.views(items), total, page: q.page, limit: q.limit };
  }
}
