import {
  API_KEY_PREFIX,
  cleanUserAgent,
  hashSecret,
  looksLikeSecret,
  newSecret,
  REFRESH_PREFIX,
  sameHash,
} from '../../../src/auth/secrets';

describe('cleanUserAgent (sessions list)', () => {
  it('removes control characters and bidirectional overrides, collapses whitespace', () => {
    expect(
      cleanUserAgent('Mozilla/5.0\r\n(X11;\u0000 Linux)\u001b[31m\u007f\u0085\u009b \u202eevil\u2066'),
    ).toBe('Mozilla/5.0 (X11; Linux) [31m evil');
    expect(cleanUserAgent('\t\u0000\u202e ')).toBeNull();
    expect(cleanUserAgent(undefined)).toBeNull();
  });

  it('keeps at most 256 characters without splitting a surrogate pair, and drops lone surrogates', () => {
    expect(cleanUserAgent('A'.repeat(5000))).toHaveLength(256);
    const emoji = `${'B'.repeat(255)}😀`; // 255 + 2 units: the pair does not fit
    expect(cleanUserAgent(emoji)).toBe('B'.repeat(255));
    expect(cleanUserAgent(`x\ud800y`)).toBe('x y');
  });
});

describe('secrets', () => {
  it('makes prefixed 256-bit secrets, recognises their shape, hashes and compares them', () => {
    const key = newSecret(API_KEY_PREFIX);
    expect(key).toMatch(/^sk_[A-Za-z0-9_-]{43}$/);
    expect(looksLikeSecret(key, API_KEY_PREFIX)).toBe(true);
    expect(looksLikeSecret(key, REFRESH_PREFIX)).toBe(false);
    expect(looksLikeSecret(`${key}x`, API_KEY_PREFIX)).toBe(false);
    expect(looksLikeSecret(42, API_KEY_PREFIX)).toBe(false);
    expect(sameHash(hashSecret(key), hashSecret(key))).toBe(true);
    expect(sameHash(hashSecret(key), hashSecret(newSecret(API_KEY_PREFIX)))).toBe(false);
    expect(sameHash(hashSecret(key), Buffer.alloc(3))).toBe(false);
  });
});
