import { BackendProcess } from '../support/processes';
import { FaultStack, startStack, until } from './harness';

/**
 * Sessions when Redis is away or forgets everything (real processes, a Redis and a PostgreSQL of their
 * own). The per-process cache of live sessions and keys is only trusted under the user's version in
 * Redis; without an answer from Redis every request checks its session or key in PostgreSQL, and a
 * version Redis lost reads as changed. So an ended session or a revoked key never comes back.
 */
describe('faults: sessions and API keys without Redis', () => {
  let s: FaultStack;
  let a: BackendProcess;
  let b: BackendProcess;

  beforeAll(async () => {
    s = await startStack();
    const db = s.newDatabase();
    [a, b] = await Promise.all([s.start('api', db, {}, 'apiA'), s.start('api', db, {}, 'apiB')]);
  }, 90_000);
  afterAll(async () => {
    await s?.teardown();
  }, 60_000);

  const password = 'password-123';
  const me = async (p: BackendProcess, token: string) => (await p.request('/api/auth/me', { token })).status;
  const withKey = async (p: BackendProcess, key: string) =>
    (await p.request('/api/auth/me', { headers: { 'x-api-key': key } })).status;

  it('Redis down: a logout and a key revocation are refused at once on both processes (checked in PostgreSQL), and stay refused after Redis returns empty', async () => {
    const reg = await a.register(undefined, password);
    const login = async () =>
      (await (
        await a.request('/api/auth/login', { method: 'POST', json: { email: reg.user.email, password } })
      ).json()) as {
        accessToken: string;
        refreshToken: string;
      };
    const [ended, kept] = [await login(), await login()];
    const key = (await (
      await a.request('/api/auth/api-keys', { method: 'POST', token: kept.accessToken, json: { name: 'k' } })
    ).json()) as { id: number; key: string };
    for (const p of [a, b]) {
      expect(await me(p, ended.accessToken)).toBe(200); // cached as live under the current version
      expect(await withKey(p, key.key)).toBe(200);
    }

    await s.redis.stop();
    // The bump cannot reach Redis; the processes check PostgreSQL on every request meanwhile.
    expect(
      (await a.request('/api/auth/logout', { method: 'POST', json: { refreshToken: ended.refreshToken } }))
        .status,
    ).toBe(204);
    expect(
      (await a.request(`/api/auth/api-keys/${key.id}`, { method: 'DELETE', token: kept.accessToken })).status,
    ).toBe(204);
    for (const p of [a, b]) {
      expect(await me(p, ended.accessToken)).toBe(401);
      expect(await withKey(p, key.key)).toBe(401);
      expect(await me(p, kept.accessToken)).toBe(200);
    }

    await s.redis.start(); // same port, empty: every version is gone
    await until(
      'Redis answers the gate again',
      async () => (await a.request('/api/health/ready')).status === 200,
      30_000,
    );
    for (const p of [a, b]) {
      expect(await me(p, ended.accessToken)).toBe(401);
      expect(await withKey(p, key.key)).toBe(401);
      expect(await me(p, kept.accessToken)).toBe(200);
    }
  });
});
