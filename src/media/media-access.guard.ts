import { CanActivate, ExecutionContext, Injectable, SetMetadata, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { AuthUser } from '../auth/auth-user';
import { Authenticator } from '../auth/authenticator';
import { LinkSigner, MediaVariant } from './links/link-signer';

export const MEDIA_VARIANT_KEY = 'mediaVariant';
/** Names the variant a route serves; its signed links are checked against it. */
export const ServesVariant = (variant: MediaVariant) => SetMetadata(MEDIA_VARIANT_KEY, variant);

/** How a variant request was let in: by the caller's Bearer (ownership decides) or by a signed link. */
export type MediaAccess = { by: 'bearer'; user: AuthUser } | { by: 'link' };

export interface MediaRequest {
  ip?: string;
  headers: Record<string, string | string[] | undefined>;
  params: Record<string, string | undefined>;
  query: Record<string, unknown>;
  user?: AuthUser;
  mediaAccess?: MediaAccess;
}

/** The one refusal: the same whatever the image, so a bad link reveals nothing. */
export const LINK_REFUSED = 'a valid bearer token or an unexpired signed link for this image is required';

/**
 * Access to the three image variants (routes marked @Public() so the global Bearer guard lets them
 * through). A valid Bearer (or `X-Api-Key`) decides: the route's access rule (AccessGuard, after this
 * guard) then applies to the caller (project role, or the uploader of a personal image). Without one,
 * the `exp`/`sig` query parameters must be a valid, unexpired signature for this route's variant and
 * this `:id`; anything else is 401 with one fixed message, checked before the database is asked, so
 * the answer is the same whether the image exists, is the caller's or another user's.
 */
@Injectable()
export class MediaAccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly signer: LinkSigner,
    private readonly authenticator: Authenticator,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<MediaRequest>();
    const variant = this.reflector.get<MediaVariant | undefined>(MEDIA_VARIANT_KEY, ctx.getHandler());
    if (!variant) throw new Error('MediaAccessGuard needs @ServesVariant() on the route');

    // A Bearer or an API key, checked as the global guard checks them (live session or key; this route
    // is @Public, so the global guard has already counted the request against the caller's IP).
    const user = (await this.authenticator.fromHeaders(req.headers, -1, req.ip ?? 'unknown'))?.user;
    if (user) {
      req.user = user;
      req.mediaAccess = { by: 'bearer', user };
      return true;
    }
    if (this.signer.verify(req.params['id'], variant, req.query['exp'], req.query['sig'])) {
      req.mediaAccess = { by: 'link' };
      return true;
    }
    throw new UnauthorizedException(LINK_REFUSED);
  }
}
