import { Injectable } from '@nestjs/common';
import type { RealtimeSocketData, SocketAuthenticator, SocketCredentials } from '../realtime/socket-auth';
import { Authenticator } from './authenticator';
import { CredentialEvents } from './credential-events';

const sessionRoom = (id: number) => `session:${id}`;
const apiKeyRoom = (id: number) => `api-key:${id}`;

/**
 * The Socket.IO gateway's handshake check (`auth: { token }` or `auth: { apiKey }`): the same
 * Authenticator as every REST request (live session or key), not rate limited, as before. Each socket
 * joins the room of its session or key; when that ends (logout, ended by id, password change, reuse,
 * revocation), the gateway disconnects the room on every api process. The socket is also disconnected
 * when its token or key expires (the gateway arms that timer from `exp`).
 */
@Injectable()
export class AuthSocketAuthenticator implements SocketAuthenticator {
  constructor(
    private readonly authenticator: Authenticator,
    private readonly events: CredentialEvents,
  ) {}

  async authenticate(credentials: SocketCredentials, ip: string): Promise<RealtimeSocketData | null> {
    if ('token' in credentials) {
      const found = await this.authenticator.bearer(credentials.token, -1);
      if (!found) return null;
      const claims = this.authenticator.claims(credentials.token);
      return {
        user: { sub: found.user.id, email: found.user.email, role: found.user.role },
        exp: claims?.exp,
        credentialRoom: sessionRoom(found.principal.id),
      };
    }
    const found = await this.authenticator.apiKey(credentials.apiKey, -1, ip);
    if (!found || found.principal.kind !== 'apiKey') return null;
    const exp = found.principal.expiresAt === null ? undefined : Math.floor(found.principal.expiresAt / 1000);
    return {
      user: { sub: found.user.id, email: found.user.email, role: found.user.role },
      exp,
      credentialRoom: apiKeyRoom(found.principal.id),
    };
  }

  onEnded(listener: (rooms: string[]) => void): void {
    this.events.onEnded(({ sessions = [], apiKeys = [] }) =>
      listener([...sessions.map(sessionRoom), ...apiKeys.map(apiKeyRoom)]),
    );
  }
}
