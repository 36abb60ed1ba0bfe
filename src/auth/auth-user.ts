import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import type { UserRole } from '../common/contracts';
import type { ProjectRoles } from '../common/project-roles';

/** What the global auth guard attaches to `request.user` (loaded from the database per request). */
export interface AuthUser {
  id: number;
  email: string;
  role: UserRole;
  isPremium: boolean;
  /** The caller's projects and roles (loaded with the user row; see AccessPolicy). */
  projects: ProjectRoles;
}

/** Claims of the HS256 access token. */
export interface JwtClaims {
  sub: number;
  email: string;
  role: UserRole;
  /** The session the token belongs to (every access token belongs to one). */
  sid: number;
}

/** What authenticated a request: an access token of a session, or an API key. */
export type Principal =
  { kind: 'session'; id: number } | { kind: 'apiKey'; id: number; expiresAt: number | null };

/** `@CurrentUser() user: AuthUser` in a controller method. */
export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthUser => {
  return ctx.switchToHttp().getRequest<{ user: AuthUser }>().user;
});

/** `@CurrentPrincipal() p: Principal`: the session or API key of the request. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ principal: Principal }>().principal;
});

export const SESSION_ONLY_KEY = 'sessionOnly';
/** Routes an API key may not use (managing keys, sessions, the password): 403 with a key. */
export const SessionOnly = () => SetMetadata(SESSION_ONLY_KEY, true);

export const ROLES_KEY = 'roles';
/** `@Roles('admin')`: 403 for authenticated users without that role. */
export const Roles = (...roles: UserRole[]) => SetMetadata(ROLES_KEY, roles);
