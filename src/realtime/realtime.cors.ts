import type { ServerOptions } from 'socket.io';

type SocketCors = NonNullable<ServerOptions['cors']>;

/**
 * CORS of the Socket.IO endpoint (it only matters for the HTTP long-polling transport; browsers do
 * not apply CORS to WebSocket upgrades, and authentication is by token, never by cookie):
 * - `CORS_ORIGINS` set: exactly those origins, no credentials.
 * - empty, outside production: the request's own origin is reflected (any local dev front-end works).
 * - empty, in production: no CORS headers at all, i.e. same-origin only; list the front-end's
 *   origin(s) in `CORS_ORIGINS` to allow it.
 */
export function socketCorsOptions(cfg: { corsOrigins: string[]; nodeEnv: string }): SocketCors | undefined {
  if (cfg.corsOrigins.length > 0) {
    return { origin: cfg.corsOrigins, methods: ['GET', 'POST'], credentials: false };
  }
  if (cfg.nodeEnv !== 'production') {
    return { origin: true, methods: ['GET', 'POST'], credentials: false };
  }
  return undefined;
}
