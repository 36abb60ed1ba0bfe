import { Body, Controller, Get, HttpCode, Inject, Logger, Post, Res } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { FastifyReply } from 'fastify';
import type { MlHealthResponse, MlSegmentResponse } from '../common/contracts';
import { segmenterConfig } from './segmenter.config';
import { parseSegmentRequest } from './segment-request';
import { SegmentFailure, SegmenterPool } from './segmenter-pool';
import { SegmenterError } from './segmenter.errors';
import { resolveUploadPath } from './upload-path';
import { withFetchedImage } from './image-url';

const FAILURE_STATUS: Record<SegmentFailure['kind'], number> = {
  'bad-image': 400,
  'not-found': 404,
  internal: 500,
  unavailable: 503,
};

/** The ML wire format of CONTRACT §8, served by the reference segmenter. */
@Controller()
export class SegmenterController {
  private readonly logger = new Logger(SegmenterController.name);

  constructor(
    @Inject(segmenterConfig.KEY) private readonly config: ConfigType<typeof segmenterConfig>,
    private readonly pool: SegmenterPool,
  ) {}

  /** 200 while at least one worker has OpenCV loaded; `model_loaded` once all have. */
  @Get('health')
  health(@Res({ passthrough: true }) reply: FastifyReply): MlHealthResponse {
    const ready = this.pool.readyWorkers;
    if (ready === 0) void reply.status(503);
    return { status: ready > 0 ? 'healthy' : 'unhealthy', model_loaded: ready === this.pool.threads };
  }

  @Post('segment')
  @HttpCode(200)
  async segment(@Body() body: unknown): Promise<MlSegmentResponse> {
    const request = parseSegmentRequest(body);
    // With `image_url` (STORAGE_DRIVER=s3) the image is fetched from an allowed origin; else read under UPLOAD_DIR.
    const run = (file: string) => this.pool.run(file, this.config.maxPixels);
    try {
      const results = request.image_url
        ? await withFetchedImage(
            request.image_url,
            {
              allowlist: this.config.urlAllowlist,
              maxBytes: this.config.maxFetchBytes,
              timeoutMs: this.config.fetchTimeoutMs,
            },
            run,
          )
        : await run(await resolveUploadPath(this.config.uploadDir, request.image_path));
      this.logger.log({
        msg: 'segmented',
        task_id: request.task_id,
        polygons: results.polygons.length,
        processing_time_ms: results.processing_time_ms,
      });
      return { success: true, results };
    } catch (err) {
      if (!(err instanceof SegmentFailure)) throw err;
      this.logger.warn({
        msg: 'segmentation failed',
        task_id: request.task_id,
        kind: err.kind,
        err: err.message,
      });
      throw new SegmenterError(FAILURE_STATUS[err.kind], err.message);
    }
  }
}
