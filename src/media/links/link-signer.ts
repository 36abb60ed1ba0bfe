import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { authConfig, mediaConfig } from '../../config/configuration';

/** The three image variants reachable through a signed link (CONTRACT §3). */
export const MEDIA_VARIANTS = ['file', 'thumbnail', 'overlay'] as const;
export type MediaVariant = (typeof MEDIA_VARIANTS)[number];

/** Route of each variant under the global `/api` prefix. */
export const variantPath = (imageId: number, variant: MediaVariant): string =>
  variant === 'overlay' ? `/api/images/${imageId}/segmentation/overlay` : `/api/images/${imageId}/${variant}`;

const MAX_INT4 = 2_147_483_647;
/** A canonical decimal image id (no sign, no leading zero, within `integer`). */
const ID_RE = /^[1-9]\d{0,9}$/;
/** Unix seconds, as `exp` is written. */
const EXP_RE = /^[1-9]\d{0,11}$/;
/** base64url of a 32-byte HMAC-SHA256. */
const SIG_RE = /^[A-Za-z0-9_-]{43}$/;

/**
 * Signs and checks the expiring links of `image.urls`: `sig` = base64url(HMAC-SHA256(key,
 * "<imageId>:<variant>:<exp>")). The key is derived from JWT_SECRET with HKDF (its own `info`), so a
 * link signature is never a JWT signature and the JWT secret itself never signs links. Every process
 * with the same JWT_SECRET accepts the links of every other.
 */
@Injectable()
export class LinkSigner {
  private readonly key: Buffer;
  readonly ttlSeconds: number;

  constructor(
    @Inject(authConfig.KEY) auth: ConfigType<typeof authConfig>,
    @Inject(mediaConfig.KEY) media: ConfigType<typeof mediaConfig>,
  ) {
    this.key = Buffer.from(hkdfSync('sha256', auth.jwtSecret, 'spheroseg', 'spheroseg image links v1', 32));
    this.ttlSeconds = media.fileUrlTtlSeconds;
  }

  sign(imageId: number, variant: MediaVariant, exp: number): string {
    return createHmac('sha256', this.key).update(`${imageId}:${variant}:${exp}`).digest('base64url');
  }

  /** The signed link of one variant, valid for FILE_URL_TTL_SECONDS from `nowMs`. */
  link(imageId: number, variant: MediaVariant, nowMs = Date.now()): string {
    const exp = Math.floor(nowMs / 1000) + this.ttlSeconds;
    return `${variantPath(imageId, variant)}?exp=${exp}&sig=${this.sign(imageId, variant, exp)}`;
  }

  /**
   * True when `sig` was made by {@link sign} for exactly this id, variant and `exp`, and `exp` has not
   * passed. Takes the raw request strings; anything malformed is simply not valid (no detail is given).
   */
  verify(rawId: unknown, variant: MediaVariant, rawExp: unknown, rawSig: unknown, nowMs = Date.now()): boolean {
    if (typeof rawId !== 'string' || typeof rawExp !== 'string' || typeof rawSig !== 'string') return false;
    if (!ID_RE.test(rawId) || !EXP_RE.test(rawExp) || !SIG_RE.test(rawSig)) return false;
    const id = Number(rawId);
    const exp = Number(rawExp);
    if (id > MAX_INT4 || exp * 1000 <= nowMs) return false;
    const expected = Buffer.from(this.sign(id, variant, exp), 'base64url');
    const given = Buffer.from(rawSig, 'base64url');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
