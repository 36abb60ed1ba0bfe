import {
  applyDecorators,
  createParamDecorator,
  ExecutionContext,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import type { Permission } from '../common/project-roles';
import { AccessGuard, MAX_IDS_PER_REQUEST } from './access.guard';
import { ACCESS_RULES_KEY, AccessRule, OWN_ONLY_KEY } from './access.types';

export { ACCESS_RULES_KEY, AccessRule, OWN_ONLY_KEY } from './access.types';

/** Declares the route's rules (checked in order) and runs AccessGuard after authentication. */
export const Access = (...rules: AccessRule[]) =>
  applyDecorators(SetMetadata(ACCESS_RULES_KEY, rules), UseGuards(AccessGuard));

/** Short forms of the rules. */
export const On = {
  /** The image of `:id`. `link`: a valid signed file link (MediaAccessGuard) stands in for a role. */
  image: (need: Permission, opts: { param?: string; link?: boolean } = {}): AccessRule => ({
    on: 'image',
    param: opts.param ?? 'id',
    need,
    link: opts.link,
  }),
  task: (need: Permission, param = 'taskId'): AccessRule => ({ on: 'task', param, need }),
  project: (
    need: Permission,
    from: 'param' | 'query' | 'body' = 'param',
    key = 'id',
    optional = false,
  ): AccessRule => ({ on: 'project', from, key, need, optional }),
  /** `max`: the route's own bound on the list (checked before any id is looked up: 400, not 404). */
  images: (
    need: Permission,
    from: 'query' | 'body',
    key = 'imageIds',
    optional = false,
    max = MAX_IDS_PER_REQUEST,
  ): AccessRule => ({ on: 'images', from, key, need, optional, max }),
};

/** The route only touches the caller's own things (no id of somebody else's resource reaches it). */
export const OwnOnly = () => SetMetadata(OWN_ONLY_KEY, true);

/** What AccessGuard loaded and allowed, by kind (e.g. the image entity of `:id`). */
export interface GrantedResources {
  image?: unknown;
  task?: unknown;
}

/** `@Granted('image') image: ImageEntity`: the resource AccessGuard loaded and allowed for this request. */
export const Granted = createParamDecorator(
  (kind: keyof GrantedResources, ctx: ExecutionContext): unknown => {
    const granted = ctx.switchToHttp().getRequest<{ granted?: GrantedResources }>().granted;
    const value = granted?.[kind];
    if (value === undefined) throw new Error(`@Granted('${kind}') on a route without an @Access rule for it`);
    return value;
  },
);
