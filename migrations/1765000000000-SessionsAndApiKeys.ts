import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Sessions, rotating refresh tokens and API keys (CONTRACT §3 "Sessions and API keys").
 *
 * - `sessions`: one row per login/registration; `ended_at` is set by logout, by ending it from the
 *   session list, by a password change (the other sessions) and by refresh-token reuse. A session
 *   ends `REFRESH_TOKEN_TTL_DAYS` after its login (`expires_at`), refreshed or not.
 * - `refresh_tokens`: every refresh token a session was ever given, as the SHA-256 of the token
 *   (never the token). `used_at` is set when it was exchanged; presenting a used one again ends
 *   the session (reuse detection), which is why used tokens are kept as long as their session.
 * - `api_keys`: SHA-256 of the key (never the key); deleted when revoked.
 *
 * Nothing to carry over: existing users simply have no session yet. Access tokens issued before this
 * migration carry no session id and are refused (401): their users log in again.
 */
export class SessionsAndApiKeys1765000000000 implements MigrationInterface {
  name = 'SessionsAndApiKeys1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE sessions (
        id           SERIAL PRIMARY KEY,
        user_id      INTEGER      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        user_agent   VARCHAR(256),
        created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
        last_used_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
        expires_at   TIMESTAMPTZ  NOT NULL,
        ended_at     TIMESTAMPTZ
      )`);
    await q.query(
      `CREATE INDEX idx_sessions_user_live ON sessions (user_id, created_at DESC) WHERE ended_at IS NULL`,
    );
    await q.query(`
      CREATE TABLE refresh_tokens (
        token_hash BYTEA       PRIMARY KEY,
        session_id INTEGER     NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        used_at    TIMESTAMPTZ
      )`);
    await q.query(`CREATE INDEX idx_refresh_tokens_session ON refresh_tokens (session_id)`);
    await q.query(`
      CREATE TABLE api_keys (
        id           SERIAL PRIMARY KEY,
        user_id      INTEGER      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name         VARCHAR(100) NOT NULL,
        key_hash     BYTEA        NOT NULL,
        created_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
        expires_at   TIMESTAMPTZ,
        last_used_at TIMESTAMPTZ
      )`);
    await q.query(`CREATE UNIQUE INDEX idx_api_keys_hash ON api_keys (key_hash)`);
    await q.query(`CREATE INDEX idx_api_keys_user ON api_keys (user_id, created_at DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE IF EXISTS api_keys');
    await q.query('DROP TABLE IF EXISTS refresh_tokens');
    await q.query('DROP TABLE IF EXISTS sessions');
  }
}
