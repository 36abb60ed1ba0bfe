import { Injectable, Logger } from '@nestjs/common';

/** Credentials that just ended: sessions (logout, ended by id, password change, reuse) and revoked keys. */
export interface EndedCredentials {
  sessions?: number[];
  apiKeys?: number[];
}

/**
 * In-process notice that credentials ended (after the change is committed and the user's version
 * bumped). The Socket.IO side listens to disconnect the sockets opened with them (see
 * AuthSocketAuthenticator); the REST side needs no notice (the version bump does it).
 */
@Injectable()
export class CredentialEvents {
  private readonly logger = new Logger('Auth');
  private readonly listeners: Array<(ended: EndedCredentials) => void> = [];

  onEnded(listener: (ended: EndedCredentials) => void): void {
    this.listeners.push(listener);
  }

  ended(ended: EndedCredentials): void {
    if (!ended.sessions?.length && !ended.apiKeys?.length) return;
    for (const listener of this.listeners) {
      try {
        listener(ended);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'ended-credential listener failed');
      }
    }
  }
}
