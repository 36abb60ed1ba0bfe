import { CanActivate, ExecutionContext, ForbiddenException, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { IS_PUBLIC_KEY } from '../common/public.decorator';
import type { UserRole } from '../common/contracts';
import { AuthService } from './auth.service';
import { AuthUser, ROLES_KEY } from './auth-user';
import { UsersService } from './users.service';

/**
 * Global guard: every route needs `Authorization: Bearer <token>` unless marked @Public(). The user
 * is re-read from the database so role and premium changes apply at once and deleted users are out.
 * Then @Roles(...) is enforced (403).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly users: UsersService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true;
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC_KEY, targets)) return true;

    const req = ctx.switchToHttp().getRequest<{ headers: Record<string, string | undefined>; user?: AuthUser }>();
    const header = req.headers['authorization'] ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const claims = match ? await this.auth.verify(match[1]) : null;
    if (!claims) throw new UnauthorizedException('missing or invalid bearer token');
    const user = await this.users.findById(claims.sub);
    if (!user) throw new UnauthorizedException('missing or invalid bearer token');
    req.user = { id: user.id, email: user.email, role: user.role, isPremium: user.isPremium };

    const roles = this.reflector.getAllAndOverride<UserRole[] | undefined>(ROLES_KEY, targets);
    if (roles?.length && !roles.includes(user.role)) throw new ForbiddenException('insufficient role');
    return true;
  }
}
