import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { MetricsService } from './metrics.service';

/**
 * Records http_request_duration_seconds for every response, including those ended by a guard, a pipe
 * or a 404, labelled by route pattern (never the raw URL, to bound cardinality).
 */
@Injectable()
export class HttpMetricsHook implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter?.getInstance?.() as FastifyInstance | undefined;
    if (!fastify?.addHook) return;
    const histogram = this.metrics.httpRequestDuration;
    fastify.addHook('onResponse', (req, reply, done) => {
      const route = req.routeOptions?.url ?? 'unmatched';
      const method = req.method;
      const status = reply.statusCode;
      histogram.observe(`${method} ${status} ${route}`, () => ({ method, route, status: String(status) }), reply.elapsedTime / 1000);
      done();
    });
  }
}
