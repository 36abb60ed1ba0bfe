import { ApiPropertyOptional, ApiProperty } from '@nestjs/swagger';
import { PaginationQuery } from '../common/pagination.dto';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsInt, Max, Min } from 'class-validator';
import { OptionalField } from '../common/input-rules';
import { TASK_STATUSES, TaskStatus } from '../common/contracts';

export class EnqueueDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 10, description: '10 is the most urgent; non-premium users at most 5' })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(10)
  priority?: number;
}

export class BatchEnqueueDto extends EnqueueDto {
  @ApiProperty({ type: [Number], minItems: 1, maxItems: 500 })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(500)
  @IsInt({ each: true })
  @Min(1, { each: true })
  imageIds!: number[];
}

export class ListTasksQuery extends PaginationQuery {
  @ApiPropertyOptional({ enum: TASK_STATUSES })
  @OptionalField()
  @IsIn(TASK_STATUSES as unknown as string[])
  status?: TaskStatus;
}
