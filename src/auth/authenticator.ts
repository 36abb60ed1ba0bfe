import { Injectable, Logger } from '@nestjs/common';
import { PreparedQueries } from '../database/prepared-queries';
import { AuthService } from './auth.service';
import type { AuthUser, JwtClaims, Principal } from './auth-user';
import { AuthGate, GateAnswer } from './auth-gate';
import { API_KEY_PREFIX, hashSecret, looksLikeSecret, sameHash } from './secrets';
import { UsersService } from './users.service';

const BEARER = /^Bearer\s+(\S+)$/i;
const MAX_CACHED_USERS = 50_000;
const MAX_CACHED_KEYS = 50_000;
/** Principals (sessions, keys) remembered per user and version; more than that and the set restarts. */
const MAX_PRINCIPALS_PER_USER = 256;
/** `api_keys.last_used_at` is written at most this often per key and process (never per request). */
const KEY_TOUCH_INTERVAL_MS = 60_000;

/** Who a request is, once authenticated. `gate` is the rate-limit answer (null: Redis unreachable). */
export interface Authenticated {
  user: AuthUser;
  principal: Principal;
  gate: GateAnswer | null;
}

interface CachedUser {
  user: AuthUser;
  version: string;
  /**
   * Sessions and keys checked in PostgreSQL under this version (`s<id>`, `k<id>`) → live or not. A
   * refusal may be remembered: ids are never reused and an ended session or revoked key never returns.
   */
  checked: Map<string, boolean>;
}

interface CachedKey {
  id: number;
  userId: number;
  hash: Buffer;
  /** ms since the epoch, or null (no expiry). */
  expiresAt: number | null;
}

/**
 * The one place a request's credentials are checked: the global guard, the image-variant guard (its
 * Bearer path) and the Socket.IO handshake all go through it.
 *
 * An access token (HS256, with `sid`) or an API key resolves to a user and a principal (its session or
 * key). Each check costs the one Redis round trip of the auth gate (rate limit + the user's version)
 * and nothing else while nothing changed: per process, the user row is cached next to the version it
 * was read under, together with the sessions and keys seen live in PostgreSQL under that version.
 * Every change that can refuse a credential (logout, a session ended, a password change, refresh-token
 * reuse, a key revoked, and every change of the user itself) is committed in PostgreSQL first and then
 * replaces the user's version (`AuthGate.bumpUser`), so every process re-reads the user and re-checks
 * the session or key in PostgreSQL on its next request: refused everywhere at once. Keys are found by
 * the SHA-256 of the key, cached per process (id, user, expiry), so a key costs no PostgreSQL read per
 * request either.
 *
 * Redis unreachable: every request reads the user and checks its session or key in PostgreSQL (and
 * the process forgets its cache, since a version bump may be lost meanwhile).
 */
@Injectable()
export class Authenticator {
  private readonly logger = new Logger('Auth');
  private readonly users = new Map<number, CachedUser>();
  private readonly keys = new Map<string, CachedKey>();
  private readonly keyTouched = new Map<number, number>();

  constructor(
    private readonly auth: AuthService,
    private readonly accounts: UsersService,
    private readonly gate: AuthGate,
    private readonly db: PreparedQueries,
  ) {}

  /** An access token: its user and session, counted against the user's rate limit unless `limit` < 0. */
  async bearer(token: string, limit: number): Promise<Authenticated | null> {
    const claims = this.auth.verifySync(token);
    if (!claims || !Number.isSafeInteger(claims.sid) || claims.sid <= 0) return null;
    const principal: Principal = { kind: 'session', id: claims.sid };
    const gate = await this.gate.pass(`user:${claims.sub}`, limit, claims.sub);
    const user = await this.current(claims.sub, gate?.version ?? null, principal);
    return user ? { user, principal, gate } : null;
  }

  /** The claims of an access token whose session is live (not rate limited): for the queue dashboard. */
  async verify(token: string): Promise<JwtClaims | null> {
    return (await this.bearer(token, -1)) ? this.claims(token) : null;
  }

  /** The verified claims of an access token (signature and expiry only; `exp` in seconds). */
  claims(token: string): (JwtClaims & { exp?: number }) | null {
    return this.auth.verifySync(token);
  }

  /**
   * Credentials of a request that carries them in its headers: `Authorization: Bearer <token>` (it
   * decides when both are sent) or `X-Api-Key: <key>`. Null when neither is there or it is refused.
   */
  fromHeaders(
    headers: Record<string, string | string[] | undefined>,
    limit: number,
    ip: string,
  ): Promise<Authenticated | null> {
    const header = headers['authorization'];
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (match) return this.bearer(match[1], limit);
    const key = headers['x-api-key'];
    return typeof key === 'string' ? this.apiKey(key, limit, ip) : Promise.resolve(null);
  }

  /**
   * An API key: its user and key, counted against the user's rate limit unless `limit` < 0. A key this
   * process has not seen yet is first counted against `ip` (so guessing keys is rate limited), then
   * looked up once in PostgreSQL.
   */
  async apiKey(key: string, limit: number, ip: string): Promise<Authenticated | null> {
    if (!looksLikeSecret(key, API_KEY_PREFIX)) return null;
    const hash = hashSecret(key);
    const cacheKey = hash.toString('base64');
    let k = this.keys.get(cacheKey);
    if (!k) {
      if (limit >= 0) {
        const answer = await this.gate.pass(`ip:${ip}`, limit);
        if (answer && answer.hits > limit) return null;
      }
      const [row] = await this.db.rows<{
        id: number;
        user_id: number;
        key_hash: Buffer;
        expires_at: Date | null;
      }>('SELECT id, user_id, key_hash, expires_at FROM api_keys WHERE key_hash = $1', [hash]);
      if (!row || !sameHash(row.key_hash, hash)) return null;
      k = {
        id: row.id,
        userId: row.user_id,
        hash: row.key_hash,
        expiresAt: row.expires_at ? row.expires_at.getTime() : null,
      };
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.clear();
      this.keys.set(cacheKey, k);
    } else if (!sameHash(k.hash, hash)) {
      return null;
    }
    if (k.expiresAt !== null && k.expiresAt <= Date.now()) return null;
    const principal: Principal = { kind: 'apiKey', id: k.id, expiresAt: k.expiresAt };
    const gate = await this.gate.pass(`user:${k.userId}`, limit, k.userId);
    const user = await this.current(k.userId, gate?.version ?? null, principal);
    if (!user) {
      this.keys.delete(cacheKey);
      return null;
    }
    this.touchKey(k.id);
    return { user, principal, gate };
  }

  /**
   * The user when it exists and `principal` is live: from the cache when the version is current and
   * the principal was checked under it, else from PostgreSQL (the user row and the principal, one
   * statement), then cached under `version`.
   */
  private async current(
    userId: number,
    version: string | null,
    principal: Principal,
  ): Promise<AuthUser | null> {
    if (version === null) this.users.clear();
    const tag = principal.kind === 'session' ? `s${principal.id}` : `k${principal.id}`;
    let hit = this.users.get(userId);
    if (hit && hit.version !== version) hit = undefined;
    const known = hit?.checked.get(tag);
    if (hit && known !== undefined) return known ? hit.user : null;

    const found = await this.accounts.findLive(userId, principal);
    if (!found) {
      this.users.delete(userId);
      return null;
    }
    const { user: row, live } = found;
    const user: AuthUser = {
      id: row.id,
      email: row.email,
      role: row.role,
      isPremium: row.isPremium,
      projects: row.projects ?? {},
    };
    if (version !== null) {
      if (!hit) {
        if (this.users.size >= MAX_CACHED_USERS) this.users.clear();
        hit = { user, version, checked: new Map() };
        this.users.set(userId, hit);
      }
      if (hit.checked.size >= MAX_PRINCIPALS_PER_USER) hit.checked.clear();
      hit.checked.set(tag, live);
    }
    return live ? user : null;
  }

  /** `lastUsedAt` of a key: written in the background, at most once a minute per key and process. */
  private touchKey(id: number): void {
    const now = Date.now();
    if (now - (this.keyTouched.get(id) ?? 0) < KEY_TOUCH_INTERVAL_MS) return;
    if (this.keyTouched.size >= MAX_CACHED_KEYS) this.keyTouched.clear();
    this.keyTouched.set(id, now);
    this.db.rows('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]).catch((err: unknown) => {
      this.logger.warn({ keyId: id, err: (err as Error).message }, 'api key last use not recorded');
    });
  }
}
