import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { CredentialsDto } from '../../../src/auth/dto';
import { isEmailAddress } from '../../../src/common/email';
import { validateEnv } from '../../../src/config/env.schema';

/** One e-mail rule (syntax, not a list of top-level domains) for ADMIN_EMAIL and register/login alike. */
const GOOD = [
  'ops@lab.test',
  'admin@cluster.internal',
  'me@printer.local',
  'a.b+tag@sub.example.org',
  "o'brien@example.co.uk",
  'x@xn--bcher-kva.example',
  'user_1@host-name.lan',
];
const JUNK = [
  '',
  'plain',
  '@lab.test',
  'ops@',
  'ops@lab',
  'ops@@lab.test',
  'ops lab@lab.test',
  'ops@lab..test',
  'ops@.lab.test',
  'ops@lab.test.',
  '.ops@lab.test',
  'ops.@lab.test',
  'o..ps@lab.test',
  'ops@-lab.test',
  'ops@lab-.test',
  'ops@lab.t',
  'ops@lab.123',
  'ops@[127.0.0.1]',
  '"ops"@lab.test',
  'ops@lab\n.test',
  'ops\t@lab.test',
  'ops@la_b.test',
  `${'a'.repeat(65)}@lab.test`,
  `a@${'b'.repeat(64)}.test`,
  `a@${'b.'.repeat(126)}test`,
];

const dtoErrors = async (email: unknown) =>
  (await validate(plainToInstance(CredentialsDto, { email, password: 'password-123' }))).filter(
    (e) => e.property === 'email',
  );

describe('e-mail address rule', () => {
  it.each(GOOD)('accepts %s everywhere: the rule, ADMIN_EMAIL, the register/login body', async (email) => {
    expect(isEmailAddress(email)).toBe(true);
    expect(validateEnv({ ADMIN_EMAIL: email, ADMIN_PASSWORD: 'password-123' }).ADMIN_EMAIL).toBe(email);
    expect(await dtoErrors(email)).toEqual([]);
  });

  it.each(JUNK)('refuses %j everywhere', async (email) => {
    expect(isEmailAddress(email)).toBe(false);
    if (email !== '') {
      // An empty ADMIN_EMAIL means unset; anything else that is not an address stops the process.
      expect(() => validateEnv({ ADMIN_EMAIL: email })).toThrow(
        'Invalid configuration: ADMIN_EMAIL must be a valid email',
      );
    }
    expect((await dtoErrors(email)).length).toBe(1);
  });

  it('refuses non-strings in a body', async () => {
    for (const v of [null, 5, ['ops@lab.test'], { a: 1 }]) expect((await dtoErrors(v)).length).toBe(1);
  });

  it('never echoes the refused value', () => {
    expect(() => validateEnv({ ADMIN_EMAIL: 'secret-value' })).toThrow(
      /^Invalid configuration: ADMIN_EMAIL [^]*$/,
    );
    try {
      validateEnv({ ADMIN_EMAIL: 'secret-value' });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-value');
    }
  });
});
