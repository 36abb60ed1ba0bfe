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
}

/** `@CurrentUser() user: AuthUser` in a controller method. */
export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthUser => {
  return ctx.switchToHttp().getRequest<{ user: AuthUser }>().user;
});

export const ROLES_KEY = 'roles';
/** `@Roles('admin')`: 403 for authenticated users without that role. */
export const Roles = (...roles: UserRole[]) => SetMetadata(ROLES_KEY, roles);
