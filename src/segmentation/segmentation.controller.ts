import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ParseIntIdPipe, ParseUuidParamPipe } from '../common/input-rules';
import type { FastifyReply } from 'fastify';
import { AuthUser, CurrentUser, Roles } from '../auth/auth-user';
import { BatchEnqueueDto, EnqueueDto, ListTasksQuery } from './dto';
import { QueueMetricsService } from './queue-metrics.service';
import { SegmentationQueue } from '../queue/segmentation-queue';
import { SegmentationService } from './segmentation.service';

@ApiTags('segmentation')
@ApiBearerAuth()
@Controller()
export class SegmentationController {
  constructor(private readonly segmentation: SegmentationService) {}

  /** 202 with a new task; 200 with the open task (idempotent) or, without the queue, the completed one. */
  @Post('images/:id/segmentation')
  async enqueue(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) imageId: number,
    @Body() dto: EnqueueDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const { created, task } = await this.segmentation.enqueue(user, imageId, dto.priority);
    void reply.status(created ? 202 : 200);
    return task;
  }

  @Get('images/:id/segmentation')
  result(@CurrentUser() user: AuthUser, @Param('id', ParseIntIdPipe) imageId: number) {
    return this.segmentation.result(user, imageId);
  }

  @Post('segmentation/batch')
  @HttpCode(202)
  async batch(@CurrentUser() user: AuthUser, @Body() dto: BatchEnqueueDto) {
    return { tasks: await this.segmentation.enqueueBatch(user, dto.imageIds, dto.priority) };
  }

  @Get('segmentation/tasks')
  list(@CurrentUser() user: AuthUser, @Query() q: ListTasksQuery) {
    return this.segmentation.listTasks(user, q.status, q.page, q.limit);
  }

  @Get('segmentation/tasks/:taskId')
  get(@CurrentUser() user: AuthUser, @Param('taskId', ParseUuidParamPipe) taskId: string) {
    return this.segmentation.getTask(user, taskId);
  }

  @Delete('segmentation/tasks/:taskId')
  cancel(@CurrentUser() user: AuthUser, @Param('taskId', ParseUuidParamPipe) taskId: string) {
    return this.segmentation.cancel(user, taskId);
  }
}

/** Queue administration (admin only, CONTRACT §3). */
@ApiTags('queue')
@ApiBearerAuth()
@Roles('admin')
@Controller('queue')
export class QueueAdminController {
  constructor(
    private readonly metrics: QueueMetricsService,
    private readonly queue: SegmentationQueue,
    private readonly segmentation: SegmentationService,
  ) {}

  @Get('metrics')
  snapshot() {
    return this.metrics.snapshot();
  }

  @Post('pause')
  @HttpCode(200)
  async pause() {
    await this.queue.pause();
    return this.metrics.snapshot();
  }

  @Post('resume')
  @HttpCode(200)
  async resume() {
    await this.queue.resume();
    return this.metrics.snapshot();
  }

  @Get('dead-letter')
  async deadLetter() {
    return { items: await this.segmentation.deadLetter() };
  }

  @Post('dead-letter/:taskId/retry')
  @HttpCode(202)
  retry(@Param('taskId', ParseUuidParamPipe) taskId: string) {
    return this.segmentation.retryDeadLetter(taskId);
  }
}
