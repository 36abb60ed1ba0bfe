import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Refresh tokens and API keys: 32 random bytes, base64url (43 characters), after a fixed prefix. */
export const REFRESH_PREFIX = 'rt_';
export const API_KEY_PREFIX = 'sk_';
const SECRET_BODY = /^[A-Za-z0-9_-]{43}$/;

export const newSecret = (prefix: string): string => prefix + randomBytes(32).toString('base64url');

/** True when `value` has the shape of a secret made by `newSecret(prefix)` (cheap check before hashing). */
export const looksLikeSecret = (value: unknown, prefix: string): value is string =>
  typeof value === 'string' && value.startsWith(prefix) && SECRET_BODY.test(value.slice(prefix.length));

/**
 * SHA-256 of a secret: what the database stores. The secrets are 256-bit random values, so a fast
 * hash is enough (no dictionary to guess from); a password hash would only add CPU per request.
 */
export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/** Constant-time equality of two hashes. */
export const sameHash = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

const CONTROL = /[\p{Cc}\p{Cs}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
export const USER_AGENT_MAX = 256;

/**
 * A User-Agent as stored: control characters (C0, DEL, C1) and bidirectional overrides removed,
 * whitespace runs collapsed, at most 256 characters (UTF-16 units, never splitting a surrogate pair).
 * Null when nothing is left.
 */
export function cleanUserAgent(raw: unknown): string | null {
  if (typeof raw !== 'string') return null;
  const cleaned = raw
    .slice(0, 4 * USER_AGENT_MAX)
    .replace(CONTROL, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  let out = '';
  for (const ch of cleaned) {
    if (out.length + ch.length > USER_AGENT_MAX) break;
    out += ch;
  }
  out = out.trimEnd();
  return out === '' ? null : out;
}
