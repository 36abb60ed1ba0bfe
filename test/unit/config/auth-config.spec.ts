import { durationSeconds } from '../../../src/config/configuration';
import { validateEnv } from '../../../src/config/env.schema';

describe('JWT_EXPIRES_IN and REFRESH_TOKEN_TTL_DAYS (CONTRACT §2)', () => {
  it('default to 15 minutes and 30 days', () => {
    const env = validateEnv({});
    expect(env.JWT_EXPIRES_IN).toBe('15m');
    expect(durationSeconds(env.JWT_EXPIRES_IN)).toBe(900);
    expect(env.REFRESH_TOKEN_TTL_DAYS).toBe(30);
  });

  it('read `900` as seconds and accept s, m, h, d', () => {
    expect(['900', '60s', '15m', '1h', '1d'].map(durationSeconds)).toEqual([900, 60, 900, 3600, 86_400]);
  });

  it('refuse bad values with one line naming the variable, without echoing the value', () => {
    for (const [name, value] of [
      ['JWT_EXPIRES_IN', '0'],
      ['JWT_EXPIRES_IN', '15x'],
      ['JWT_EXPIRES_IN', '1w'],
      ['REFRESH_TOKEN_TTL_DAYS', 'abc'],
      ['REFRESH_TOKEN_TTL_DAYS', '0'],
    ]) {
      let message = '';
      try {
        validateEnv({ [name]: value });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(new RegExp(`^Invalid configuration: ${name} `));
      expect(message).not.toContain(`value ${value}`);
      expect(message).not.toContain('\n');
    }
  });
});
