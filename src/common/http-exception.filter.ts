import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import type { FastifyReply } from 'fastify';
import { QueryFailedError } from 'typeorm';
import { redactSecrets } from './redact';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
}

/**
 * Errors of the pg pool / driver / TypeORM that mean "the database cannot serve now" (a restart, a
 * dropped connection, an exhausted pool): 503 with Retry-After, not 500. SQLSTATE classes 08
 * (connection exception), 57P (operator intervention) and 53 (insufficient resources), socket errors,
 * and the messages pg and TypeORM use when a connection is gone or cannot be had.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { message?: string; code?: string; driverError?: { code?: string; message?: string } } | undefined;
  const code = e?.code ?? e?.driverError?.code ?? '';
  if (/^(08|57P|53)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND'].includes(code)) {
    return true;
  }
  const msg = `${e?.message ?? ''} ${e?.driverError?.message ?? ''}`;
  return /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|read ECONNRESET|write EPIPE|Driver not Connected|not queryable|Client was closed|Cannot use a pool after calling end|the database system is (starting up|shutting down|in recovery mode)|terminating connection|server closed the connection unexpectedly|Connection is not established/i.test(
    msg,
  );
}

function isTerminusBody(res: unknown): boolean {
  return typeof res === 'object' && res !== null && 'status' in res && 'details' in res && 'info' in res;
}

/** Builds the contract's error body (CONTRACT §3) from anything thrown. */
export function toErrorBody(exception: unknown): ErrorBody | Record<string, unknown> {
  if (exception instanceof HttpException && isTerminusBody(exception.getResponse())) {
    // Terminus readiness/liveness bodies are part of the contract (CONTRACT §4): pass them through.
    return exception.getResponse() as Record<string, unknown>;
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const res = exception.getResponse();
    let message: string | string[] = exception.message;
    if (typeof res === 'object' && res !== null && 'message' in res) {
      const m = (res as { message: unknown }).message;
      if (typeof m === 'string' || (Array.isArray(m) && m.every((x) => typeof x === 'string'))) message = m;
    } else if (typeof res === 'string') {
      message = res;
    }
    return { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message };
  }
  const fastifyStatus = (exception as { statusCode?: number } | undefined)?.statusCode;
  if (typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500) {
    // Fastify's own client errors (bad JSON, body too large, unsupported content type).
    const msg = (exception as Error).message ?? STATUS_CODES[fastifyStatus];
    return { statusCode: fastifyStatus, error: STATUS_CODES[fastifyStatus] ?? 'Error', message: msg };
  }
  if (isDatabaseUnavailable(exception)) {
    return { statusCode: 503, error: STATUS_CODES[503]!, message: 'Service temporarily unavailable, retry later' };
  }
  return { statusCode: 500, error: STATUS_CODES[500]!, message: 'Internal server error' };
}

/**
 * The one exception filter: every error leaves as `{ statusCode, error, message }`, never with a
 * stack trace, SQL, a server path or a secret. Unexpected errors are logged (redacted) server-side.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const body = toErrorBody(exception);
    const status = exception instanceof HttpException ? exception.getStatus() : (body.statusCode as number);
    if (status >= 500 && !(exception instanceof HttpException)) this.logUnexpected(exception, status);
    if (status === HttpStatus.SERVICE_UNAVAILABLE && !reply.getHeader('retry-after')) {
      const retryAfter = (exception as { retryAfter?: number } | undefined)?.retryAfter ?? 5;
      void reply.header('Retry-After', String(retryAfter));
    }
    void reply.status(status).send(body);
  }

  private logUnexpected(exception: unknown, status: number): void {
    const err = exception as Error & { code?: string };
    // A failed query's message may quote data; its SQLSTATE code is enough to tell what happened.
    const detail = exception instanceof QueryFailedError ? 'database query failed' : redactSecrets(err?.message ?? String(exception));
    this.logger.error({ status, err: { name: err?.name, code: err?.code, message: detail, stack: err?.stack } }, 'request failed');
  }
}
