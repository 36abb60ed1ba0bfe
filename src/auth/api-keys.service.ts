import { Injectable } from '@nestjs/common';
import { PreparedQueries } from '../database/prepared-queries';
import { AuthGate } from './auth-gate';
import { CredentialEvents } from './credential-events';
import { API_KEY_PREFIX, hashSecret, newSecret } from './secrets';

/** One row of `GET /api/auth/api-keys` (never the key). */
export interface ApiKeyView {
  id: number;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

interface ApiKeyRow {
  id: number;
  name: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
}

const toView = (r: ApiKeyRow): ApiKeyView => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at.toISOString(),
  expiresAt: r.expires_at ? r.expires_at.toISOString() : null,
  lastUsedAt: r.last_used_at ? r.last_used_at.toISOString() : null,
});

/**
 * API keys: `sk_` + 32 random bytes (base64url), stored as their SHA-256 only and shown once. A
 * revoked key's row is deleted and the user's version bumped, so every api process re-checks that
 * user's keys on its next request (see Authenticator).
 */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly db: PreparedQueries,
    private readonly gate: AuthGate,
    private readonly events: CredentialEvents,
  ) {}

  async create(
    userId: number,
    name: string,
    expiresInDays: number | undefined,
  ): Promise<Omit<ApiKeyView, 'lastUsedAt'> & { key: string }> {
    const key = newSecret(API_KEY_PREFIX);
    const [row] = await this.db.rows<ApiKeyRow>(
      `INSERT INTO api_keys (user_id, name, key_hash, expires_at)
       VALUES ($1, $2, $3, CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(days => $4::int) END)
       RETURNING id, name, created_at, expires_at, last_used_at`,
      [userId, name, hashSecret(key), expiresInDays ?? null],
    );
    const { id, name: n, createdAt, expiresAt } = toView(row);
    return { id, name: n, key, createdAt, expiresAt };
  }

  /** The user's keys, newest first (expired ones included, with their `expiresAt`). */
  async list(userId: number): Promise<ApiKeyView[]> {
    const rows = await this.db.rows<ApiKeyRow>(
      'SELECT id, name, created_at, expires_at, last_used_at FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC',
      [userId],
    );
    return rows.map(toView);
  }

  /** Revokes a key of `userId`; false when the user has no such key. */
  async revoke(userId: number, id: number): Promise<boolean> {
    const rows = await this.db.rows('DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING id', [
      id,
      userId,
    ]);
    if (rows.length === 0) return false;
    await this.gate.bumpUser(userId);
    this.events.ended({ apiKeys: [id] });
    return true;
  }
}
