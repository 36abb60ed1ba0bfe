import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { PaginationQuery } from '../common/pagination.dto';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { MAX_INT4, OptionalField } from '../common/input-rules';
import { MAX_EDIT_POINTS, MAX_EDIT_POLYGONS } from './result-edit';
import { TASK_STATUSES, TaskStatus } from '../common/contracts';

export class EnqueueDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: 10,
    description: '10 is the most urgent; non-premium users at most 5',
  })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(10)
  priority?: number;
}

export class BatchEnqueueDto extends EnqueueDto {
  @ApiProperty({ type: 'integer', isArray: true, minItems: 1, maxItems: 500 })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(500)
  @IsInt({ each: true })
  @Min(1, { each: true })
  imageIds!: number[];
}

export class ProjectEnqueueDto extends EnqueueDto {
  @ApiPropertyOptional({
    enum: ['unsegmented', 'all'],
    default: 'unsegmented',
    description: '`unsegmented`: only images without a current result',
  })
  @OptionalField()
  @IsIn(['unsegmented', 'all'])
  scope?: 'unsegmented' | 'all';
}

export class ListTasksQuery extends PaginationQuery {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_INT4,
    description: 'the tasks of this project’s images (any member)',
  })
  @OptionalField()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(MAX_INT4)
  projectId?: number;

  @ApiPropertyOptional({ enum: TASK_STATUSES, type: 'string' })
  @OptionalField()
  @IsIn(TASK_STATUSES as unknown as string[])
  status?: TaskStatus;
}

export class TaskDto {
  @ApiProperty({ format: 'uuid' }) taskId!: string;
  @ApiProperty({ type: 'integer' }) imageId!: number;
  @ApiProperty({ enum: TASK_STATUSES }) status!: TaskStatus;
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 10 }) priority!: number;
  @ApiProperty({ type: 'integer', minimum: 0, maximum: 100 }) progress!: number;
  @ApiProperty({ type: 'integer' }) attempts!: number;
  @ApiProperty({ type: 'string', nullable: true }) error!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) startedAt!: string | null;
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true }) completedAt!: string | null;
}

export class TaskListDto {
  @ApiProperty({ type: [TaskDto] }) items!: TaskDto[];
  @ApiProperty({ type: 'integer' }) total!: number;
  @ApiProperty({ type: 'integer' }) page!: number;
  @ApiProperty({ type: 'integer' }) limit!: number;
}

export class TaskItemsDto {
  @ApiProperty({ type: [TaskDto] }) items!: TaskDto[];
}

export class BatchTasksDto {
  @ApiProperty({ type: [TaskDto] }) tasks!: TaskDto[];
}

export class PolygonDto {
  @ApiProperty({ type: 'integer' }) id!: number;
  @ApiProperty({ enum: ['external', 'internal'] }) type!: string;
  @ApiProperty({ type: 'integer', nullable: true }) parentId!: number | null;
  @ApiProperty({
    type: 'array',
    items: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 },
  })
  points!: number[][];
  @ApiProperty() class!: string;
  @ApiProperty() confidence!: number;
  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'number' },
    description:
      'area, perimeter, circularity, solidity, eccentricity, majorAxis, minorAxis, orientation, centroidX, centroidY',
  })
  features!: Record<string, number>;
}

export class EditorDto {
  @ApiProperty({ type: 'integer' }) id!: number;
  @ApiProperty() email!: string;
}

export class ResultDto {
  @ApiProperty({ type: 'string', format: 'uuid', nullable: true, description: 'null for an edit' }) taskId!:
    string | null;
  @ApiProperty({ type: 'integer' }) imageId!: number;
  @ApiProperty({
    type: 'integer',
    minimum: 1,
    description: '1, 2, … per image; the newest is the current result',
  })
  version!: number;
  @ApiProperty({
    enum: ['ml', 'edit'],
    description: '"ml" for a result of a task, "edit" for one saved by a person (or a restore)',
  })
  source!: 'ml' | 'edit';
  @ApiProperty({
    type: EditorDto,
    nullable: true,
    description: 'who saved an edit; null for a result of a task',
  })
  editedBy!: EditorDto | null;
  @ApiProperty({ type: 'integer' }) imageWidth!: number;
  @ApiProperty({ type: 'integer' }) imageHeight!: number;
  @ApiProperty({ type: 'integer' }) processingTimeMs!: number;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: [PolygonDto] }) polygons!: PolygonDto[];
}

/** `GET /api/images/:id/segmentation?version=N`. */
export class ResultQuery {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: MAX_INT4,
    description: 'a version of the result (default: the current one)',
  })
  @OptionalField()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_INT4)
  version?: number;
}

/** One polygon of an edit (documentation; the route checks its body itself, see result-edit.ts). */
export class EditPolygonDto {
  @ApiPropertyOptional({
    oneOf: [
      { type: 'integer', minimum: 0 },
      { type: 'string', minLength: 1, maxLength: 64 },
    ],
    description: 'kept as sent; a polygon without one gets a new id',
  })
  id?: number | string;
  @ApiProperty({ enum: ['external', 'internal'] }) type!: 'external' | 'internal';
  @ApiProperty({
    oneOf: [{ type: 'integer' }, { type: 'string' }],
    nullable: true,
    description:
      'null for an external polygon; for an internal one (a hole) the id of an external polygon of the same request',
  })
  parentId!: number | string | null;
  @ApiProperty({
    type: 'array',
    minItems: 3,
    items: { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 },
    description: '[x, y] within [0, imageWidth] × [0, imageHeight]; the polygon must have a non-zero area',
  })
  points!: number[][];
  @ApiPropertyOptional({ default: 'spheroid', minLength: 1, maxLength: 64 }) class?: string;
}

export class EditResultDto {
  @ApiProperty({
    type: 'integer',
    minimum: 0,
    description: 'the current version the edit is based on (0 when the image has no result)',
  })
  baseVersion!: number;
  @ApiProperty({
    type: [EditPolygonDto],
    maxItems: MAX_EDIT_POLYGONS,
    description: `at most ${MAX_EDIT_POLYGONS} polygons and ${MAX_EDIT_POINTS} points in all; [] is a valid edit. Features and confidence are computed by the server`,
  })
  polygons!: EditPolygonDto[];
}

export class RestoreDto {
  @ApiProperty({ type: 'integer', minimum: 0, description: 'the current version (optimistic concurrency)' })
  baseVersion!: number;
}

export class VersionDto {
  @ApiProperty({ type: 'integer' }) version!: number;
  @ApiProperty({ enum: ['ml', 'edit'] }) source!: 'ml' | 'edit';
  @ApiProperty({ type: 'string', format: 'uuid', nullable: true }) taskId!: string | null;
  @ApiProperty({ type: EditorDto, nullable: true }) editedBy!: EditorDto | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: 'integer', description: 'every polygon, holes included' }) polygonCount!: number;
  @ApiProperty({ type: 'integer', description: 'external polygons' }) spheroidCount!: number;
}

export class VersionListDto {
  @ApiProperty({ type: [VersionDto], description: 'newest first' }) items!: VersionDto[];
}

export class QueueMetricsDto {
  @ApiProperty({ type: 'integer' }) waiting!: number;
  @ApiProperty({ type: 'integer' }) active!: number;
  @ApiProperty({ type: 'integer' }) completed!: number;
  @ApiProperty({ type: 'integer' }) failed!: number;
  @ApiProperty({ type: 'integer' }) delayed!: number;
  @ApiProperty({ type: 'integer' }) paused!: number;
  @ApiProperty({ type: 'integer' }) deadLettered!: number;
  @ApiProperty() isPaused!: boolean;
  @ApiProperty() processingRatePerMinute!: number;
  @ApiProperty() avgWaitMs!: number;
  @ApiProperty() avgProcessingMs!: number;
}
