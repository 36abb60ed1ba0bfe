import * as bcrypt from 'bcryptjs';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { BoardAuthenticator, parseBoardAuthorization } from '../../../src/queue/board/board-auth';
import type { UserEntity } from '../../../src/auth/user.entity';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

describe('parseBoardAuthorization', () => {
  it('reads bearer tokens and basic credentials (the password may contain colons)', () => {
    expect(parseBoardAuthorization('Bearer abc.def.ghi')).toEqual({ kind: 'bearer', token: 'abc.def.ghi' });
    expect(parseBoardAuthorization(`basic ${b64('a@b.org:pa:ss wörd')}`)).toEqual({
      kind: 'basic',
      email: 'a@b.org',
      password: 'pa:ss wörd',
    });
  });

  it('rejects missing, empty and malformed headers', () => {
    const headers = [undefined, '', 'Basic', 'Bearer', 'Basic %%%', 'Digest x'];
    headers.push(`Basic ${b64('no-colon')}`, `Basic ${b64(':pw')}`, `Basic ${b64('a@b.org:')}`);
    for (const h of headers) expect({ h, parsed: parseBoardAuthorization(h) }).toEqual({ h, parsed: null });
  });
});

describe('BoardAuthenticator', () => {
  const admin: UserEntity = { id: 1, email: 'root@example.org', role: 'admin', isPremium: false } as UserEntity;
  let hits: number;
  let compares: number;
  const limiter: ThrottlerStorage = {
    increment: async (_key, _ttl, limit) => {
      hits++;
      return { totalHits: hits, timeToExpire: 60, isBlocked: hits > limit, timeToBlockExpire: hits > limit ? 60 : 0 };
    },
  };
  const users = {
    findById: async (id: number) => (id === admin.id ? admin : null),
    findByEmailWithHash: async (email: string) => (email === admin.email ? admin : null),
    verifyPassword: async (u: UserEntity, pw: string) => {
      compares++;
      return bcrypt.compare(pw, u.passwordHash);
    },
  };
  const auth = {
    verify: async (token: string) => (token === 'good' ? { sub: 1, email: admin.email, role: 'admin' as const, sid: 1 } : null),
  };

  beforeEach(async () => {
    hits = 0;
    compares = 0;
    admin.passwordHash = await bcrypt.hash('first-password', 4);
  });

  it('remembers a matching password until the hash changes, without counting it against the budget', async () => {
    const a = new BoardAuthenticator(auth, users, limiter, { passwordChecksPerMinute: 3 });
    const header = `Basic ${b64(`${admin.email}:first-password`)}`;
    for (let i = 0; i < 5; i++) expect(await a.authenticate(header, '10.0.0.1')).toEqual({ ok: true, userId: 1 });
    expect({ compares, hits }).toEqual({ compares: 1, hits: 1 });

    admin.passwordHash = await bcrypt.hash('second-password', 4);
    expect(await a.authenticate(header, '10.0.0.1')).toMatchObject({ ok: false, status: 401 });
    expect(await a.authenticate(`Basic ${b64(`${admin.email}:second-password`)}`, '10.0.0.1')).toEqual({ ok: true, userId: 1 });
  });

  it('answers 429 once the password-check budget is spent, before running bcrypt', async () => {
    const a = new BoardAuthenticator(auth, users, limiter, { passwordChecksPerMinute: 2 });
    const guess = `Basic ${b64(`${admin.email}:guess`)}`;
    expect((await a.authenticate(guess, '10.0.0.2')).ok).toBe(false);
    expect((await a.authenticate(guess, '10.0.0.2')).ok).toBe(false);
    expect(await a.authenticate(guess, '10.0.0.2')).toMatchObject({ ok: false, status: 429, retryAfterSeconds: 60 });
    expect(compares).toBe(2);
    expect(await a.authenticate('Bearer good', '10.0.0.2')).toEqual({ ok: true, userId: 1 });
    expect(await a.authenticate('Bearer bad', '10.0.0.2')).toMatchObject({ ok: false, status: 401 });
  });
});
