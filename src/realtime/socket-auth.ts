import type { IncomingHttpHeaders } from 'node:http';
import type { JwtService } from '@nestjs/jwt';
import type { JwtClaims } from '../auth/auth-user';
import { SOCKET_MAX_TOKEN_LENGTH } from './realtime.constants';

/** What an authenticated socket carries in `socket.data`. */
export interface RealtimeSocketData {
  user: JwtClaims;
  /** Token expiry, seconds since the epoch (absent when the token has none). */
  exp?: number;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The access token of a handshake: `auth.token` (a bare token or `Bearer <token>`), else the `Authorization` header. */
export function handshakeToken(handshake: {
  auth?: unknown;
  headers: IncomingHttpHeaders;
}): string | undefined {
  const auth = handshake.auth as { token?: unknown } | undefined;
  let raw: string | undefined;
  if (auth && typeof auth.token === 'string' && auth.token.trim() !== '') raw = auth.token.trim();
  else if (typeof handshake.headers.authorization === 'string') raw = handshake.headers.authorization.trim();
  if (!raw) return undefined;
  const bearer = BEARER.exec(raw);
  const token = bearer ? bearer[1] : raw;
  if (token.length === 0 || token.length > SOCKET_MAX_TOKEN_LENGTH || /\s/.test(token)) return undefined;
  return token;
}

/** Verified HS256 claims of `token`, or null when it is malformed, badly signed, expired or lacks a numeric `sub`. */
export async function verifySocketToken(jwt: JwtService, token: string): Promise<RealtimeSocketData | null> {
  try {
    const claims = await jwt.verifyAsync<JwtClaims & { exp?: number }>(token, { algorithms: ['HS256'] });
    if (typeof claims !== 'object' || claims === null) return null;
    if (typeof claims.sub !== 'number' || !Number.isSafeInteger(claims.sub) || claims.sub <= 0) return null;
    const exp = typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp : undefined;
    return { user: { sub: claims.sub, email: claims.email, role: claims.role }, exp };
  } catch {
    return null;
  }
}
