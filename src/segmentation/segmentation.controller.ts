import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { ApiDoc, AUTHED } from '../common/api-docs';
import { ParseIntIdPipe, ParseUuidParamPipe } from '../common/input-rules';
import type { FastifyReply } from 'fastify';
import { AuthUser, CurrentUser, Roles } from '../auth/auth-user';
import { Access, Granted, On } from '../access';
import { ImageEntity } from '../images/image.entity';
import { TaskEntity } from './task.entity';
import { toTaskView } from './views';
import {
  BatchEnqueueDto,
  BatchTasksDto,
  EnqueueDto,
  ListTasksQuery,
  ProjectEnqueueDto,
  QueueMetricsDto,
  TaskDto,
  TaskItemsDto,
  TaskListDto,
} from './dto';
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
  @ApiDoc('Queue the segmentation of an image', {
    ...AUTHED,
    400: true,
    404: 'no such image, or not the caller’s',
    422: 'ENABLE_QUEUE=false: the ML service rejected the image',
    429: 'rate limit, or MAX_PENDING_TASKS_PER_USER reached',
    502: 'ENABLE_QUEUE=false: the ML call failed',
    503: 'the database is unavailable, or (ENABLE_QUEUE=false) the ML circuit is open',
  })
  @ApiBody({ type: EnqueueDto, required: false })
  @ApiAcceptedResponse({ type: TaskDto, description: 'a new task, queued' })
  @ApiOkResponse({
    type: TaskDto,
    description: 'the image’s open task (no second job), or with ENABLE_QUEUE=false the completed task',
  })
  @Access(On.image('edit'))
  async enqueue(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) _imageId: number,
    @Body() dto: EnqueueDto,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Granted('image') image: ImageEntity,
  ) {
    const { created, task } = await this.segmentation.enqueue(user, image, dto.priority);
    void reply.status(created ? 202 : 200);
    return task;
  }

  @Post('segmentation/batch')
  @ApiDoc('Queue the segmentation of up to 500 images', {
    ...AUTHED,
    400: true,
    404: 'an image is missing or not the caller’s (nothing is queued)',
    429: 'rate limit, or the batch would exceed MAX_PENDING_TASKS_PER_USER (nothing is queued)',
  })
  @ApiAcceptedResponse({ type: BatchTasksDto })
  @HttpCode(202)
  @Access(On.images('edit', 'body', 'imageIds', false, 500))
  async batch(@CurrentUser() user: AuthUser, @Body() dto: BatchEnqueueDto) {
    return { tasks: await this.segmentation.enqueueBatch(user, dto.imageIds, dto.priority) };
  }

  @Get('segmentation/tasks')
  @ApiDoc(
    'List the tasks the caller queued, or with `projectId` the tasks of that project’s images (any member)',
    { ...AUTHED, 400: true, 404: 'no such project, or the caller is not a member' },
  )
  @ApiOkResponse({ type: TaskListDto })
  @Access(On.project('view', 'query', 'projectId', true))
  list(@CurrentUser() user: AuthUser, @Query() q: ListTasksQuery) {
    return this.segmentation.listTasks(user, q.projectId, q.status, q.page, q.limit);
  }

  @Get('segmentation/tasks/:taskId')
  @ApiDoc('Get a segmentation task (any member of its image’s project)', {
    ...AUTHED,
    400: 'taskId is not a UUID',
    404: 'no such task, or not visible to the caller',
  })
  @ApiOkResponse({ type: TaskDto })
  @Access(On.task('view'))
  get(@Param('taskId', ParseUuidParamPipe) _taskId: string, @Granted('task') task: TaskEntity) {
    return toTaskView(task);
  }

  @Delete('segmentation/tasks/:taskId')
  @ApiDoc('Cancel a queued or processing task (editor of its image’s project)', {
    ...AUTHED,
    400: 'taskId is not a UUID',
    403: 'the caller is a viewer of the image’s project',
    404: 'no such task, or not visible to the caller',
    409: 'the task has already finished',
  })
  @ApiOkResponse({ type: TaskDto, description: 'the task, cancelled' })
  @Access(On.task('edit'))
  cancel(@Param('taskId', ParseUuidParamPipe) _taskId: string, @Granted('task') task: TaskEntity) {
    return this.segmentation.cancel(task);
  }

  @Post('projects/:id/segmentation')
  @ApiDoc('Queue the segmentation of a project’s images (editor; up to 10 000)', {
    ...AUTHED,
    400: 'malformed id or body, or more than 10 000 images to queue',
    403: 'the caller is a viewer',
    404: 'no such project, or the caller is not a member',
    429: 'rate limit, or the call would exceed MAX_PENDING_TASKS_PER_USER (nothing is queued)',
  })
  @ApiBody({ type: ProjectEnqueueDto, required: false })
  @ApiAcceptedResponse({
    type: BatchTasksDto,
    description: 'the tasks made, and the open tasks of images that had one',
  })
  @HttpCode(202)
  @Access(On.project('edit'))
  async project(
    @CurrentUser() user: AuthUser,
    @Param('id', ParseIntIdPipe) id: number,
    @Body() dto: ProjectEnqueueDto,
  ) {
    return {
      tasks: await this.segmentation.enqueueProject(user, id, dto.scope ?? 'unsegmented', dto.priority),
    };
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
  @ApiDoc('Queue figures', { ...AUTHED, 403: true })
  @ApiOkResponse({ type: QueueMetricsDto })
  snapshot() {
    return this.metrics.snapshot();
  }

  @Post('pause')
  @ApiDoc('Pause the queue (every worker stops taking jobs)', { ...AUTHED, 403: true })
  @ApiOkResponse({ type: QueueMetricsDto })
  @HttpCode(200)
  async pause() {
    await this.queue.pause();
    return this.metrics.snapshot();
  }

  @Post('resume')
  @ApiDoc('Resume the queue', { ...AUTHED, 403: true })
  @ApiOkResponse({ type: QueueMetricsDto })
  @HttpCode(200)
  async resume() {
    await this.queue.resume();
    return this.metrics.snapshot();
  }

  @Get('dead-letter')
  @ApiDoc('Tasks that failed after every attempt', { ...AUTHED, 403: true })
  @ApiOkResponse({ type: TaskItemsDto })
  async deadLetter() {
    return { items: await this.segmentation.deadLetter() };
  }

  @Post('dead-letter/:taskId/retry')
  @ApiDoc('Queue a dead-lettered task again (attempts reset)', {
    ...AUTHED,
    400: 'taskId is not a UUID',
    403: true,
    404: 'no such dead-lettered task',
    409: 'the image has another open task',
  })
  @ApiAcceptedResponse({ type: TaskDto })
  @HttpCode(202)
  retry(@Param('taskId', ParseUuidParamPipe) taskId: string) {
    return this.segmentation.retryDeadLetter(taskId);
  }
}
