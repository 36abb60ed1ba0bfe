import { Body, Controller, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { Access, Granted, On } from '../access';
import { ImageEntity } from '../images/image.entity';
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe } from '../common/input-rules';
import type { RouteBodyLimit } from '../common/route-body-limits';
import { EditResultDto, RestoreDto, ResultDto, ResultQuery, VersionListDto } from './dto';
import { MAX_EDIT_POINTS, MAX_EDIT_POLYGONS } from './result-edit';
import { ResultJson, ResultVersionsService } from './result-versions.service';

/** The one route whose body may be larger than the API's 1 MiB: an edit of up to 200 000 points. */
export const RESULT_EDIT_BODY_LIMIT: RouteBodyLimit = {
  method: 'PUT',
  url: '/api/images/:id/segmentation',
  bytes: 16 * 1024 * 1024,
};

/** A result is sent as the JSON text the service built (its polygons straight from PostgreSQL). */
const asJson = async (reply: FastifyReply, text: Promise<ResultJson>): Promise<ResultJson> => {
  const body = await text;
  void reply.type('application/json; charset=utf-8');
  return body;
};

const CONFLICT =
  'baseVersion is not the current version (the message names it), or the image has a queued or processing task';

/** Results and their versions (CONTRACT §3 "Editing a result"). */
@ApiTags('segmentation')
@ApiBearerAuth()
@Controller('images/:id/segmentation')
export class ResultVersionsController {
  constructor(private readonly versions: ResultVersionsService) {}

  @Get()
  @ApiDoc('The current segmentation result of an image, or one of its versions', {
    ...AUTHED,
    400: 'malformed id or version',
    404: 'no such image, not visible to the caller, no result yet, or no such version',
  })
  @ApiOkResponse({ type: ResultDto })
  @Access(On.image('view'))
  get(
    @Param('id', ParseIntIdPipe) _imageId: number,
    @Query() q: ResultQuery,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ) {
    return asJson(reply, this.versions.get(image, q.version));
  }

  /** The body is checked by the service (parseEdit): class-validator would take seconds over 200 000 points. */
  @Put()
  @ApiDoc(
    'Save an edited result as the new current version',
    {
      ...AUTHED,
      400: `invalid polygons (the message names the polygon): fewer than 3 points, a point outside the image, zero area, a hole without an external parent, an external polygon with a parent, a repeated id, an unknown type, more than ${MAX_EDIT_POLYGONS} polygons or ${MAX_EDIT_POINTS} points`,
      403: 'the caller is a viewer of the image’s project',
      404: 'no such image, or not visible to the caller',
      409: CONFLICT,
      413: 'body over 16 MiB',
    },
    'Features are computed by the server with the reference service’s definitions; confidence is kept for a polygon whose id and points are those of the base version, 1 otherwise. Bodies up to 16 MiB.',
  )
  @ApiBody({ type: EditResultDto })
  @ApiOkResponse({ type: ResultDto, description: 'the new current version (source "edit")' })
  @Access(On.image('edit'))
  save(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) _imageId: number,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ) {
    return asJson(reply, this.versions.save(user, image, body));
  }

  @Get('versions')
  @ApiDoc('Every version of an image’s result, newest first', {
    ...AUTHED,
    400: true,
    404: 'no such image, or not the caller’s',
  })
  @ApiOkResponse({ type: VersionListDto })
  @Access(On.image('view'))
  list(@Param('id', ParseIntIdPipe) _imageId: number, @Granted('image') image: ImageEntity) {
    return this.versions.list(image);
  }

  @Post('versions/:version/restore')
  @HttpCode(200)
  @ApiDoc('Make an old version current again (as a new version, source "edit")', {
    ...AUTHED,
    400: 'malformed id, version or baseVersion',
    403: 'the caller is a viewer of the image’s project',
    404: 'no such image, not visible to the caller, or no such version',
    409: CONFLICT,
  })
  @ApiBody({ type: RestoreDto })
  @ApiOkResponse({ type: ResultDto, description: 'the new current version' })
  @Access(On.image('edit'))
  restore(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) _imageId: number,
    @Param('version', ParseIntIdPipe) version: number,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ) {
    return asJson(reply, this.versions.restore(user, image, version, body));
  }
}
