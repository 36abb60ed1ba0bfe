import type { IncomingHttpHeaders } from 'node:http';
import type { JwtClaims } from '../auth/auth-user';
import { SOCKET_MAX_TOKEN_LENGTH } from './realtime.constants';

/** Who a socket belongs to: the user of its access token or API key. */
export type SocketUser = Pick<JwtClaims, 'sub' | 'email' | 'role'>;

/** What an authenticated socket carries in `socket.data`. */
export interface RealtimeSocketData {
  user: SocketUser;
  /** Expiry of the token or key, seconds since the epoch (absent when it has none). */
  exp?: number;
  /** Room of the socket's session or key: its sockets are disconnected there when it ends. */
  credentialRoom?: string;
}

/** What a handshake presents: `auth: { token }` (or an `Authorization` header), or `auth: { apiKey }` (or `X-Api-Key`). */
export type SocketCredentials = { token: string } | { apiKey: string };

/**
 * Checks a handshake's credentials as the REST API checks them (signature, live session, live key).
 * Provided by the auth module; the gateway knows only this interface.
 */
export interface SocketAuthenticator {
  authenticate(credentials: SocketCredentials, ip: string): Promise<RealtimeSocketData | null>;
  /** Calls `listener` with the credential rooms of sessions and keys that just ended (on this process). */
  onEnded(listener: (rooms: string[]) => void): void;
}
export const SOCKET_AUTHENTICATOR = Symbol('SOCKET_AUTHENTICATOR');

const BEARER = /^Bearer\s+(\S+)\s*$/i;

const usable = (v: string): boolean => v.length > 0 && v.length <= SOCKET_MAX_TOKEN_LENGTH && !/\s/.test(v);

/**
 * The credentials of a handshake: `auth.token` (a bare token or `Bearer <token>`), else `auth.apiKey`,
 * else the `Authorization` header, else the `X-Api-Key` header. Undefined when none is usable.
 */
export function handshakeCredentials(handshake: {
  auth?: unknown;
  headers: IncomingHttpHeaders;
}): SocketCredentials | undefined {
  const auth = handshake.auth as { token?: unknown; apiKey?: unknown } | undefined;
  let raw: string | undefined;
  if (auth && typeof auth.token === 'string' && auth.token.trim() !== '') raw = auth.token.trim();
  else if (auth && typeof auth.apiKey === 'string' && auth.apiKey.trim() !== '') {
    const apiKey = auth.apiKey.trim();
    return usable(apiKey) ? { apiKey } : undefined;
  } else if (typeof handshake.headers.authorization === 'string')
    raw = handshake.headers.authorization.trim();
  else if (typeof handshake.headers['x-api-key'] === 'string') {
    const apiKey = handshake.headers['x-api-key'].trim();
    return usable(apiKey) ? { apiKey } : undefined;
  }
  if (!raw) return undefined;
  const bearer = BEARER.exec(raw);
  const token = bearer ? bearer[1] : raw;
  return usable(token) ? { token } : undefined;
}
