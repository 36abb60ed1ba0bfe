import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { MlSegmentResponse } from '../common/contracts';
import { SegmenterError } from './segmenter.errors';

/**
 * Every error of the segmenter as `{ success: false, error }` (CONTRACT §8): its own errors with their
 * message, framework and Fastify errors (unknown route, malformed JSON, body too large) with a fixed
 * message for their status, anything else as 500 without detail.
 */
@Catch()
export class SegmenterExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('SegmenterHttp');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, error } = this.describe(exception);
    if (status >= 500)
      this.logger.error({
        msg: 'request failed',
        status,
        err: exception instanceof Error ? exception.name : typeof exception,
      });
    void reply.status(status).send({ success: false, error } satisfies MlSegmentResponse);
  }

  private describe(exception: unknown): { status: number; error: string } {
    if (exception instanceof SegmenterError) return { status: exception.status, error: exception.message };
    const status = statusOf(exception);
    if (status === 404) return { status, error: 'not found' };
    if (status >= 400 && status < 500) return { status, error: `invalid request (${status})` };
    return { status: 500, error: 'internal error' };
  }
}

function statusOf(exception: unknown): number {
  if (exception instanceof HttpException) return exception.getStatus();
  const statusCode = (exception as { statusCode?: unknown } | null)?.statusCode;
  return typeof statusCode === 'number' ? statusCode : 500;
}
