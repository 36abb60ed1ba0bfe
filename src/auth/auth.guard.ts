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
import { AuthUser, Principal, ROLES_KEY, SESSION_ONLY_KEY } from './auth-user';
import { Authenticator } from './authenticator';
import { AuthGate, GateAnswer } from './auth-gate';

/** Set by `@SkipRateLimit()` (`SkipThrottle({ default: true })`). */
const SKIP_KEY = `${THROTTLER_SKIP}default`;

interface RouteMeta {
  isPublic: boolean;
  skipRateLimit: boolean;
  sessionOnly: boolean;
  roles: UserRole[] | undefined;
}

type Req = {
  headers: Record<string, string | string[] | undefined>;
  ip?: string;
  user?: AuthUser;
  principal?: Principal;
};
type Res = { header(name: string, value: string | number): unknown };

/**
 * The one global guard: authentication, roles and the shared rate limit.
 *
 * - Every route needs `Authorization: Bearer <access token>` or `X-Api-Key: <key>` unless marked
 *   @Public() (401); the Bearer wins when both are sent. @Roles(...) is enforced (403), and so is
 *   @SessionOnly() (403 with an API key: keys cannot manage keys, sessions or the password).
 * - The credential is checked by the Authenticator: one Redis script both counts the request
 *   (RATE_LIMIT_PER_MINUTE per user, per IP when anonymous, a fixed one-minute window shared by all
 *   processes) and returns the user's version, under which the user row and the liveness of the
 *   session or key are cached per process. Any change of the user, an ended session or a revoked key
 *   replaces the version, so every process re-checks on its next request.
 * - Redis unreachable: the request is let through (not rate limited) and the user and its session or
 *   key are read from PostgreSQL.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly meta = new WeakMap<object, RouteMeta>();
  private readonly limit: number;

  constructor(
    private readonly reflector: Reflector,
    private readonly authenticator: Authenticator,
    private readonly gate: AuthGate,
    @Inject(appConfig.KEY) app: ConfigType<typeof appConfig>,
  ) {
    this.limit = app.rateLimitPerMinute;
  }

  /**
   * Synchronous for the routes with nothing to check (@Public and @SkipRateLimit: probes and scrapes,
   * the most frequent requests of all): Nest takes a boolean without awaiting it, which spares each of
   * them two promises and their microtask turns.
   */
  canActivate(ctx: ExecutionContext): boolean | Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const meta = this.routeMeta(ctx);
    if (meta.isPublic && meta.skipRateLimit) return true;
    return this.check(ctx, meta);
  }

  private async check(ctx: ExecutionContext, meta: RouteMeta): Promise<boolean> {
    const http = ctx.switchToHttp();
    const req = http.getRequest<Req>();
    const res = http.getResponse<Res>();
    const limit = meta.skipRateLimit ? -1 : this.limit;

    if (meta.isPublic) {
      if (limit >= 0) this.enforce(res, await this.gate.pass(`ip:${req.ip ?? 'unknown'}`, limit));
      return true;
    }

    const found = await this.authenticator.fromHeaders(req.headers, limit, req.ip ?? 'unknown');
    if (!found) throw new UnauthorizedException('missing or invalid bearer token or API key');
    req.user = found.user;
    req.principal = found.principal;
    if (meta.roles?.length && !meta.roles.includes(found.user.role))
      throw new ForbiddenException('insufficient role');
    if (meta.sessionOnly && found.principal.kind === 'apiKey') {
      throw new ForbiddenException('an API key cannot manage API keys, sessions or the password');
    }
    if (limit >= 0) this.enforce(res, found.gate);
    return true;
  }

  /** 429 past the limit, with the usual headers (as @nestjs/throttler sent them). */
  private enforce(res: Res, answer: GateAnswer | null): void {
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
        sessionOnly: !!this.reflector.getAllAndOverride<boolean>(SESSION_ONLY_KEY, targets),
        roles: this.reflector.getAllAndOverride<UserRole[] | undefined>(ROLES_KEY, targets),
      };
      this.meta.set(handler, m);
    }
    return m;
  }
}
