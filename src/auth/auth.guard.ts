import {
  CanActivate,
  ExecutionContext,
  ForbiddenException,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { ConfigType } from '@nestjs/config';
import { THROTTLER_SKIP } from '@nestjs/throttler/dist/throttler.constants';
import { appConfig } from '../config/configuration';
import { IS_PUBLIC_KEY } from '../common/public.decorator';
import type { UserRole } from '../common/contracts';
import { AuthService } from './auth.service';
import { AuthUser, ROLES_KEY } from './auth-user';
import { AuthGate } from './auth-gate';
import { UsersService } from './users.service';

/** Set by `@SkipRateLimit()` (`SkipThrottle({ default: true })`). */
const SKIP_KEY = `${THROTTLER_SKIP}default`;
const MAX_CACHED_USERS = 50_000;
const BEARER = /^Bearer\s+(\S+)$/i;

interface RouteMeta {
  isPublic: boolean;
  skipRateLimit: boolean;
  roles: UserRole[] | undefined;
}

type Req = { headers: Record<string, string | string[] | undefined>; ip?: string; user?: AuthUser };
type Res = { header(name: string, value: string | number): unknown };

/**
 * The one global guard: authentication, roles and the shared rate limit.
 *
 * - Every route needs `Authorization: Bearer <token>` unless marked @Public() (401); @Roles(...) is
 *   enforced (403).
 * - The user behind a token is re-checked on every request without reading PostgreSQL each time: one
 *   Redis script both counts the request (RATE_LIMIT_PER_MINUTE per user, per IP when anonymous, a
 *   fixed one-minute window shared by all processes) and returns the user's version (see AuthGate).
 *   The user row is cached per process next to the version it was read under; a change or deletion
 *   of the user replaces the version, so every process reloads the row on its next request: role and
 *   premium changes, revoked admin rights and deleted users take effect at once everywhere.
 * - Redis unreachable: the request is let through (not rate limited) and the user is read from
 *   PostgreSQL, and this process forgets every cached user (a version bump may be lost meanwhile).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly meta = new WeakMap<object, RouteMeta>();
  private readonly cache = new Map<number, { user: AuthUser; version: string }>();
  private readonly limit: number;

  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly users: UsersService,
    private readonly gate: AuthGate,
    @Inject(appConfig.KEY) app: ConfigType<typeof appConfig>,
  ) {
    this.limit = app.rateLimitPerMinute;
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const meta = this.routeMeta(ctx);
    const http = ctx.switchToHttp();
    const req = http.getRequest<Req>();
    const res = http.getResponse<Res>();
    const limit = meta.skipRateLimit ? -1 : this.limit;

    if (meta.isPublic) {
      if (limit >= 0) this.enforce(res, await this.gate.pass(`ip:${req.ip ?? 'unknown'}`, limit));
      return true;
    }

    const header = req.headers['authorization'];
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    const claims = match ? this.auth.verifySync(match[1]) : null;
    if (!claims) throw new UnauthorizedException('missing or invalid bearer token');

    const answer = await this.gate.pass(`user:${claims.sub}`, limit, claims.sub);
    const user = await this.currentUser(claims.sub, answer?.version ?? null);
    if (!user) throw new UnauthorizedException('missing or invalid bearer token');
    req.user = user;
    if (meta.roles?.length && !meta.roles.includes(user.role))
      throw new ForbiddenException('insufficient role');
    if (limit >= 0) this.enforce(res, answer);
    return true;
  }

  /** The cached user when its version is current, else the row from PostgreSQL (cached under `version`). */
  private async currentUser(id: number, version: string | null): Promise<AuthUser | null> {
    if (version === null) this.cache.clear();
    const hit = this.cache.get(id);
    if (hit && hit.version === version) return hit.user;
    const row = await this.users.findById(id);
    if (!row) {
      this.cache.delete(id);
      return null;
    }
    const user: AuthUser = {
      id: row.id,
      email: row.email,
      role: row.role,
      isPremium: row.isPremium,
      projects: row.projects ?? {},
    };
    if (version !== null) {
      if (this.cache.size >= MAX_CACHED_USERS) this.cache.clear();
      this.cache.set(id, { user, version });
    }
    return user;
  }

  /** 429 past the limit, with the usual headers (as @nestjs/throttler sent them). */
  private enforce(res: Res, answer: { hits: number; resetMs: number } | null): void {
    if (!answer) return;
    const resetS = Math.max(1, Math.ceil(answer.resetMs / 1000));
    if (answer.hits > this.limit) {
      res.header('Retry-After', resetS);
      throw new HttpException(
        `too many requests: limit ${this.limit} per minute`,
        HttpStatus.TOO_MANY_REQUESTS,
      );
    }
    res.header('X-RateLimit-Limit', this.limit);
    res.header('X-RateLimit-Remaining', Math.max(0, this.limit - answer.hits));
    res.header('X-RateLimit-Reset', resetS);
  }

  /** Route metadata, read once per handler. */
  private routeMeta(ctx: ExecutionContext): RouteMeta {
    const handler = ctx.getHandler();
    let m = this.meta.get(handler);
    if (!m) {
      const targets = [handler, ctx.getClass()];
      m = {
        isPublic: !!this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, targets),
        skipRateLimit: !!this.reflector.getAllAndOverride<boolean>(SKIP_KEY, targets),
        roles: this.reflector.getAllAndOverride<UserRole[] | undefined>(ROLES_KEY, targets),
      };
      this.meta.set(handler, m);
    }
    return m;
  }
}
