import { createHmac, randomBytes } from 'node:crypto';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Authenticator } from '../../auth/authenticator';
import type { UserEntity } from '../../auth/user.entity';
import type { UsersService } from '../../auth/users.service';

/** What the `Authorization` header carries: an access token or basic credentials. */
export type BoardCredentials = { kind: 'bearer'; token: string } | { kind: 'basic'; email: string; password: string };

export type BoardAuthResult =
  | { ok: true; userId: number }
  | { ok: false; status: 401 | 403 | 429; message: string; retryAfterSeconds?: number };

export interface BoardAuthOptions {
  /** Password checks (bcrypt) per client IP and minute before 429; remembered passwords do not count. */
  passwordChecksPerMinute?: number;
  /** How long a password that matched is remembered for its user's current hash. */
  rememberMs?: number;
}

/** Parses `Bearer <token>` or `Basic base64(email:password)`; null for anything else. */
export function parseBoardAuthorization(header: string | undefined): BoardCredentials | null {
  const match = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return null;
  if (match[1].toLowerCase() === 'bearer') return { kind: 'bearer', token: match[2] };
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(match[2])) return null;
  const decoded = Buffer.from(match[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':'); // the password may contain ':', the email may not
  if (colon <= 0 || colon === decoded.length - 1) return null;
  return { kind: 'basic', email: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const MAX_REMEMBERED = 1000;

/**
 * Decides who may open the queue dashboard: an admin by access token (as the global AuthGuard checks
 * it: signature and live session, then the user re-read from PostgreSQL so a demoted or deleted admin is out at once),
 * or an admin by email and password, which is what a browser sends after its basic-auth prompt.
 *
 * A browser repeats the basic credentials on every request (the board polls), so a password that
 * matched is remembered in memory (keyed by an HMAC of the user's current bcrypt hash and the
 * password, so a password change forgets it) instead of running bcrypt each time. Every other
 * password check counts against a per-IP budget in the shared rate-limit store: the login route is
 * rate-limited and this must not become an unthrottled way to guess the admin password.
 */
export class BoardAuthenticator {
  private readonly remembered = new Map<string, number>();
  private readonly hmacKey = randomBytes(32);
  private readonly checksPerMinute: number;
  private readonly rememberMs: number;

  constructor(
    private readonly auth: Pick<Authenticator, 'verify'>,
    private readonly users: Pick<UsersService, 'findById' | 'findByEmailWithHash' | 'verifyPassword'>,
    private readonly limiter: ThrottlerStorage,
    opts: BoardAuthOptions = {},
  ) {
    this.checksPerMinute = opts.passwordChecksPerMinute ?? 10;
    this.rememberMs = opts.rememberMs ?? 5 * 60_000;
  }

  async authenticate(header: string | undefined, ip: string): Promise<BoardAuthResult> {
    const creds = parseBoardAuthorization(header);
    if (!creds) return { ok: false, status: 401, message: 'admin credentials required' };
    if (creds.kind === 'bearer') {
      const claims = await this.auth.verify(creds.token);
      const user = claims ? await this.users.findById(claims.sub) : null;
      return user ? this.admit(user) : { ok: false, status: 401, message: 'missing or invalid bearer token' };
    }

    const user = await this.users.findByEmailWithHash(creds.email);
    const key = user ? this.rememberKey(user, creds.password) : '';
    if (user && (this.remembered.get(key) ?? 0) > Date.now()) return this.admit(user);

    const budget = await this.limiter.increment(`board-password:ip:${ip}`, 60_000, this.checksPerMinute, 60_000, 'board');
    if (budget.isBlocked) {
      return { ok: false, status: 429, message: 'too many password attempts', retryAfterSeconds: budget.timeToBlockExpire };
    }
    if (!user || !(await this.users.verifyPassword(user, creds.password))) {
      return { ok: false, status: 401, message: 'invalid email or password' };
    }
    this.remember(key);
    return this.admit(user);
  }

  private admit(user: UserEntity): BoardAuthResult {
    return user.role === 'admin' ? { ok: true, userId: user.id } : { ok: false, status: 403, message: 'insufficient role' };
  }

  private rememberKey(user: UserEntity, password: string): string {
    return createHmac('sha256', this.hmacKey).update(`${user.id}\0${user.passwordHash}\0${password}`).digest('base64');
  }

  private remember(key: string): void {
    const now = Date.now();
    if (this.remembered.size >= MAX_REMEMBERED) {
      for (const [k, until] of this.remembered) if (until <= now) this.remembered.delete(k);
      if (this.remembered.size >= MAX_REMEMBERED) this.remembered.clear();
    }
    this.remembered.set(key, now + this.rememberMs);
  }
}
