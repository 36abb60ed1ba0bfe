import { BadRequestException, Controller, Get, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiOperation,
  ApiProduces,
  ApiPropertyOptional,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { Allow, IsIn, IsOptional } from 'class-validator';
import { create as contentDisposition } from 'content-disposition';
import type { FastifyReply } from 'fastify';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { ApiErrors, AUTHED } from '../common/api-docs';
import { CSV_COLUMNS } from './csv-export';
import { EXPORT_FORMATS, ExportFormat, ExportsService, MAX_EXPORT_IDS } from './exports.service';
import { ExportScope } from './export-reader';
import { Access, On, parseId, parseIdList } from '../access';

export class ExportQuery {
  @ApiPropertyOptional({ enum: EXPORT_FORMATS, default: 'csv' })
  @IsOptional()
  @IsIn(EXPORT_FORMATS, { message: 'format must be one of: csv, coco' })
  format: ExportFormat = 'csv';

  @ApiPropertyOptional({
    description: `comma-separated image ids (at most ${MAX_EXPORT_IDS}), each visible to the caller; default: every own personal image with a result`,
    example: '1,2,3',
  })
  @IsOptional()
  @Allow()
  imageIds?: string | string[];

  @ApiPropertyOptional({
    type: 'integer',
    description: 'export every image of this project that has a result (any member); not with imageIds',
  })
  @IsOptional()
  @Allow()
  projectId?: string;
}

@ApiTags('segmentation')
@ApiBearerAuth()
@Controller('segmentation')
export class ExportsController {
  constructor(private readonly exports: ExportsService) {}

  @Get('export')
  @ApiOperation({
    summary: 'Every spheroid of the current results as CSV or COCO, streamed',
    description:
      `Images in id order; images without a result are skipped. CSV (RFC 4180, CRLF): one row per spheroid, columns ${CSV_COLUMNS.join(', ')}; ` +
      'text cells starting with =, +, - or @ are prefixed with \'. COCO: images, categories [{id:1,name:"spheroid"}], one annotation per ' +
      'spheroid (polygons, or uncompressed RLE {counts,size:[h,w]} when it has holes; area as pycocotools computes it; bbox [x,y,w,h]).',
  })
  @ApiProduces('text/csv', 'application/json')
  @ApiResponse({
    status: 200,
    description: 'the export, as an attachment',
    content: {
      'text/csv': { schema: { type: 'string', example: `${CSV_COLUMNS.join(',')}\r\n` } },
      'application/json': {
        schema: {
          type: 'object',
          properties: {
            images: { type: 'array', items: { type: 'object' } },
            categories: { type: 'array', items: { type: 'object' } },
            annotations: { type: 'array', items: { type: 'object' } },
          },
        },
      },
    },
  })
  @ApiErrors({
    ...AUTHED,
    400: 'unknown format, malformed ids, more than 10 000 ids, or projectId with imageIds',
    404: 'an id or project not visible to the caller (nothing is sent)',
  })
  @Access(On.project('view', 'query', 'projectId', true), On.images('view', 'query', 'imageIds', true))
  async export(
    @CurrentUser() user: AuthUser,
    @Query() q: ExportQuery,
    @Res() reply: FastifyReply,
  ): Promise<FastifyReply> {
    if (q.projectId !== undefined && q.imageIds !== undefined)
      throw new BadRequestException('projectId and imageIds cannot be used together');
    const scope: ExportScope =
      q.projectId !== undefined
        ? { project: parseId(q.projectId, 'projectId') }
        : q.imageIds !== undefined
          ? { ids: parseIdList(q.imageIds, 'imageIds') }
          : { personalOf: user.id };
    const out = this.exports.open(scope, q.format);
    return reply
      .code(200)
      .header('content-type', out.contentType)
      .header('content-disposition', contentDisposition(out.fileName, { type: 'attachment' }))
      .header('cache-control', 'private, no-store')
      .send(out.body);
  }
}
