import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { authConfig } from '../config/configuration';
import { PreparedQueries } from '../database/prepared-queries';
import { AuthGate } from './auth-gate';
import { CredentialEvents } from './credential-events';
import { hashSecret, looksLikeSecret, newSecret, REFRESH_PREFIX, sameHash } from './secrets';

/** A session's refresh token as handed to the client (the database keeps only its hash). */
export interface IssuedRefresh {
  sessionId: number;
  userId: number;
  refreshToken: string;
  /** When the session ends, refreshed or not (REFRESH_TOKEN_TTL_DAYS after its login). */
  expiresAt: Date;
}

/** One row of `GET /api/auth/sessions`. */
export interface SessionView {
  id: number;
  createdAt: string;
  lastUsedAt: string;
  userAgent: string | null;
  current: boolean;
}

/** How a refresh ended: a successor, or refused (unknown/expired/ended) or reuse of a used token (session ended). */
export type RotateOutcome = { ok: true; issued: IssuedRefresh } | { ok: false; reuse: boolean };

/**
 * Sessions and their rotating refresh tokens, in PostgreSQL. A session is a row of `sessions`; ending
 * it deletes the row (its refresh tokens go by cascade), which is what the Authenticator checks. Every
 * end is followed by a bump of the user's version, so every api process re-checks that user's
 * sessions on its next request (see Authenticator).
 */
@Injectable()
export class SessionsService {
  private readonly ttlDays: number;

  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly db: PreparedQueries,
    private readonly gate: AuthGate,
    private readonly events: CredentialEvents,
    @Inject(authConfig.KEY) cfg: ConfigType<typeof authConfig>,
  ) {
    this.ttlDays = cfg.refreshTokenTtlDays;
  }

  /**
   * A new session of `userId` and its first refresh token, in one statement. The user's expired
   * sessions are deleted on the way (they can never be used again), so rows do not pile up.
   */
  async start(userId: number, userAgent: string | null): Promise<IssuedRefresh> {
    const refreshToken = newSecret(REFRESH_PREFIX);
    const [row] = await this.db.rows<{ id: number; expires_at: Date }>(
      `WITH gone AS (DELETE FROM sessions WHERE user_id = $1 AND expires_at <= now()),
            s AS (INSERT INTO sessions (user_id, user_agent, expires_at)
                  VALUES ($1, $2, now() + make_interval(days => $3::int)) RETURNING id, expires_at),
            t AS (INSERT INTO refresh_tokens (token_hash, session_id) SELECT $4, id FROM s)
       SELECT id, expires_at FROM s`,
      [userId, userAgent, this.ttlDays, hashSecret(refreshToken)],
    );
    return { sessionId: row.id, userId, refreshToken, expiresAt: row.expires_at };
  }

  /**
   * Exchanges a refresh token for its successor (rotation). A token that was already exchanged ends
   * its session (reuse detection: whoever holds either token, thief or owner, is refused from then
   * on). Rows are locked, so two exchanges of one token never both succeed: the second one is a reuse.
   */
  async rotate(refreshToken: string): Promise<RotateOutcome> {
    if (!looksLikeSecret(refreshToken, REFRESH_PREFIX)) return { ok: false, reuse: false };
    const hash = hashSecret(refreshToken);
    const next = newSecret(REFRESH_PREFIX);
    const outcome = await this.ds.transaction(
      async (m): Promise<RotateOutcome & { userId?: number; sessionId?: number }> => {
        const [row] = (await m.query(
          `SELECT t.token_hash, t.used_at, s.id AS session_id, s.user_id, s.expires_at, s.expires_at <= now() AS expired
           FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
          WHERE t.token_hash = $1 FOR UPDATE`,
          [hash],
        )) as Array<{
          token_hash: Buffer;
          used_at: Date | null;
          session_id: number;
          user_id: number;
          expires_at: Date;
          expired: boolean;
        }>;
        if (!row || !sameHash(row.token_hash, hash)) return { ok: false, reuse: false };
        if (row.expired) return { ok: false, reuse: false };
        if (row.used_at !== null) {
          await m.query('DELETE FROM sessions WHERE id = $1', [row.session_id]);
          return { ok: false, reuse: true, userId: row.user_id, sessionId: row.session_id };
        }
        await m.query('UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1', [hash]);
        await m.query('INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)', [
          hashSecret(next),
          row.session_id,
        ]);
        await m.query('UPDATE sessions SET last_used_at = now() WHERE id = $1', [row.session_id]);
        return {
          ok: true,
          issued: {
            sessionId: row.session_id,
            userId: row.user_id,
            refreshToken: next,
            expiresAt: row.expires_at,
          },
        };
      },
    );
    if (!outcome.ok && outcome.reuse && outcome.userId !== undefined && outcome.sessionId !== undefined) {
      await this.ended(outcome.userId, [outcome.sessionId]);
    }
    return outcome.ok ? { ok: true, issued: outcome.issued } : { ok: false, reuse: outcome.reuse };
  }

  /** Logout: ends the session of `refreshToken` (used or not). Nothing happens for an unknown token. */
  async endByRefreshToken(refreshToken: string): Promise<void> {
    if (!looksLikeSecret(refreshToken, REFRESH_PREFIX)) return;
    const rows = await this.db.rows<{ id: number; user_id: number }>(
      `DELETE FROM sessions s USING refresh_tokens t
        WHERE t.token_hash = $1 AND s.id = t.session_id RETURNING s.id, s.user_id`,
      [hashSecret(refreshToken)],
    );
    if (rows[0]) await this.ended(rows[0].user_id, [rows[0].id]);
  }

  /** Ends one session of `userId`; false when there is no such live session of that user. */
  async end(userId: number, sessionId: number): Promise<boolean> {
    const rows = await this.db.rows(
      'DELETE FROM sessions WHERE id = $1 AND user_id = $2 AND expires_at > now() RETURNING id',
      [sessionId, userId],
    );
    if (rows.length === 0) return false;
    await this.ended(userId, [sessionId]);
    return true;
  }

  /**
   * After sessions of `userId` were deleted (committed): every process re-checks the user's sessions
   * on its next request (version bump), and the sockets opened with them are disconnected.
   */
  async ended(userId: number, sessionIds: number[]): Promise<void> {
    await this.gate.bumpUser(userId);
    this.events.ended({ sessions: sessionIds });
  }

  /** The live sessions of `userId`, newest first; `current` marks `currentId`. */
  async list(userId: number, currentId: number | null): Promise<SessionView[]> {
    const rows = await this.db.rows<{
      id: number;
      created_at: Date;
      last_used_at: Date;
      user_agent: string | null;
    }>(
      `SELECT id, created_at, last_used_at, user_agent FROM sessions
        WHERE user_id = $1 AND expires_at > now() ORDER BY created_at DESC, id DESC`,
      [userId],
    );
    return rows.map((r) => ({
      id: r.id,
      createdAt: r.created_at.toISOString(),
      lastUsedAt: r.last_used_at.toISOString(),
      userAgent: r.user_agent,
      current: r.id === currentId,
    }));
  }
}
