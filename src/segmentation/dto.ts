import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { PaginationQuery } from '../common/pagination.dto';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, Max, Min } from 'class-validator';
import { MAX_INT4, OptionalField } from '../common/input-rules';
import { Type } from 'class-transformer';
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

export class ResultDto {
  @ApiProperty({ format: 'uuid' }) taskId!: string;
  @ApiProperty({ type: 'integer' }) imageId!: number;
  @ApiProperty({ type: 'integer' }) imageWidth!: number;
  @ApiProperty({ type: 'integer' }) imageHeight!: number;
  @ApiProperty({ type: 'integer' }) processingTimeMs!: number;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: [PolygonDto] }) polygons!: PolygonDto[];
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
