import type { NestFastifyApplication } from '@nestjs/platform-fastify';

/** A larger (or smaller) body limit for one route than the API's default. */
export interface RouteBodyLimit {
  method: 'POST' | 'PUT' | 'PATCH';
  /** The full path as registered, global prefix included (e.g. `/api/images/:id/segmentation`). */
  url: string;
  bytes: number;
}

/**
 * Gives the listed routes their own body limit (Fastify's per-route `bodyLimit`, which the JSON
 * parser honours): a declared Content-Length over it is refused with 413 before any byte is read,
 * and a body without one is cut off with 413 as soon as it passes the limit, so nothing past the
 * limit is buffered. Must run before the routes are registered (createApp, before init).
 */
export function useRouteBodyLimits(app: NestFastifyApplication, limits: readonly RouteBodyLimit[]): void {
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const limit = limits.find((l) => l.url === route.url && methods.includes(l.method));
      if (limit) route.bodyLimit = limit.bytes;
    });
}
