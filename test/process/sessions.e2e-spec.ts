import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { io, Socket as ClientSocket } from 'socket.io-client';
import { until } from '../support/checks';
import { BackendProcess, ProcessResponse, startProcesses, stopAllProcesses } from '../support/processes';
import { uploadImage } from '../support/fixtures';
import { rawRequest } from '../support/raw-http';

/**
 * Sessions, refresh rotation, sign-out everywhere and API keys (CONTRACT §3 "Sessions and API keys",
 * §6 `auth: { apiKey }`), across two real api processes of one deployment (same database, Redis and
 * QUEUE_NAME), plus a third one with one-second access tokens for the expired-token case. Each
 * refusal that must reach every process "within one second" is checked on the other process than the
 * one that ended the session, by polling with a one-second deadline (it is in fact the next request).
 */
const WITHIN_MS = 1000;
const ADMIN = {
  email: `admin_${randomBytes(4).toString('hex')}@example.org`,
  password: `pw-${randomBytes(8).toString('hex')}`,
};

interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  user: { id: number; email: string };
}

describe('sessions and API keys across two api processes', () => {
  let a: BackendProcess;
  let b: BackendProcess;
  let short: BackendProcess;
  let pg: Client;
  const sockets: ClientSocket[] = [];
  /** Every refresh token and API key handed out: none may appear in a log line. */
  const secrets: string[] = [];
  const remember = <T extends { refreshToken?: string; key?: string }>(body: T): T => {
    for (const s of [body.refreshToken, body.key]) if (typeof s === 'string') secrets.push(s);
    return body;
  };

  beforeAll(async () => {
    const env = {
      QUEUE_NAME: `${process.env.QUEUE_NAME}_sess_${Date.now()}`,
      RATE_LIMIT_PER_MINUTE: '600',
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      LOG_LEVEL: 'info',
    };
    [a, b, short] = await startProcesses([
      { role: 'api', env, name: 'apiA' },
      { role: 'api', env, name: 'apiB' },
      { role: 'api', env: { ...env, JWT_EXPIRES_IN: '1' }, name: 'apiShort' },
    ]);
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
  });

  afterAll(async () => {
    for (const s of sockets) s.close();
    await pg?.end();
    await stopAllProcesses();
  });

  const password = 'password-123';
  const newEmail = () => `s_${randomBytes(5).toString('hex')}@example.org`;

  const register = async (p: BackendProcess, email = newEmail()): Promise<Tokens> => {
    const res = await p.request('/api/auth/register', { method: 'POST', json: { email, password } });
    expect(res.status).toBe(201);
    return remember(await res.json());
  };
  const login = async (p: BackendProcess, email: string, pw = password): Promise<Tokens> => {
    const res = await p.request('/api/auth/login', { method: 'POST', json: { email, password: pw } });
    expect(res.status).toBe(200);
    return remember(await res.json());
  };
  const refresh = (p: BackendProcess, refreshToken: unknown): Promise<ProcessResponse> =>
    p.request('/api/auth/refresh', { method: 'POST', json: { refreshToken } });
  const me = async (p: BackendProcess, token: string): Promise<number> =>
    (await p.request('/api/auth/me', { token })).status;
  const withKey = (
    p: BackendProcess,
    path: string,
    key: string,
    init: RequestInit & { json?: unknown } = {},
  ) => p.request(path, { ...init, headers: { 'x-api-key': key } });
  /** Waits (at most one second) until `check` answers `status`; returns how long that took. */
  const refusedWithin = async (what: string, check: () => Promise<number>, status = 401): Promise<number> => {
    const started = Date.now();
    await until(what, async () => (await check()) === status, WITHIN_MS, 20);
    return Date.now() - started;
  };

  it('register and login answer a refresh token and expiresIn; a refresh token works once and its successor works (rotation)', async () => {
    const reg = await register(a);
    expect(reg).toEqual({
      user: expect.objectContaining({ email: reg.user.email }),
      accessToken: expect.any(String),
      refreshToken: expect.any(String),
      expiresIn: 900, // JWT_EXPIRES_IN default: 15 minutes
    });
    const first = await refresh(b, reg.refreshToken);
    expect(first.status).toBe(200);
    const next: Tokens = await first.json();
    expect(next).toEqual({
      accessToken: expect.any(String),
      refreshToken: expect.any(String),
      expiresIn: 900,
    });
    expect(next.refreshToken).not.toBe(reg.refreshToken);
    expect(await me(a, next.accessToken)).toBe(200);
    expect(await me(b, reg.accessToken)).toBe(200); // the older access token of the same session lives on
    const second = await refresh(a, next.refreshToken);
    expect(second.status).toBe(200);
    // Refresh tokens are stored as hashes only.
    const stored = await pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM refresh_tokens WHERE position(convert_to($1, 'UTF8') IN token_hash) > 0`,
      [next.refreshToken],
    );
    expect(stored.rows[0].n).toBe(0);
  });

  it('a reused refresh token ends the whole session: thief and owner get 401 on both processes; other sessions go on', async () => {
    const reg = await register(a);
    const other = await login(b, reg.user.email);
    const rotated: Tokens = await (await refresh(a, reg.refreshToken)).json();
    expect(await me(b, rotated.accessToken)).toBe(200); // B caches the session as live
    expect((await refresh(b, reg.refreshToken)).status).toBe(401); // reuse
    await refusedWithin('access token of the reused session refused on B', () => me(b, rotated.accessToken));
    await refusedWithin('access token of the reused session refused on A', () => me(a, rotated.accessToken));
    expect((await refresh(a, rotated.refreshToken)).status).toBe(401);
    expect(await me(a, other.accessToken)).toBe(200);
    expect((await refresh(b, other.refreshToken)).status).toBe(200);
  });

  it('two processes exchanging one refresh token at once: exactly one succeeds, and the reuse ends the session', async () => {
    const reg = await register(a);
    const answers = await Promise.all([refresh(a, reg.refreshToken), refresh(b, reg.refreshToken)]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 401]);
    const winner: Tokens = await answers.find((r) => r.status === 200)!.json();
    await refusedWithin('the winner refused too (session ended)', () => me(a, winner.accessToken));
    expect((await refresh(b, winner.refreshToken)).status).toBe(401);
  });

  it('refuses unknown, malformed and expired refresh tokens with 401, and a missing one with 400', async () => {
    expect((await refresh(a, `rt_${randomBytes(32).toString('base64url')}`)).status).toBe(401);
    const garbage = await refresh(a, 'not a token');
    expect(garbage.status).toBe(401);
    expect(await garbage.json()).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: expect.any(String),
    });
    expect((await a.request('/api/auth/refresh', { method: 'POST', json: {} })).status).toBe(400);
    expect((await refresh(a, 12345)).status).toBe(400);
    // A session ends REFRESH_TOKEN_TTL_DAYS after its login, refreshed or not.
    const reg = await register(a);
    await pg.query(`UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1`, [
      reg.user.id,
    ]);
    expect((await refresh(b, reg.refreshToken)).status).toBe(401);
  });

  it('logout ends the session on every process within a second (refresh and access tokens); other sessions go on', async () => {
    const reg = await register(a);
    const other = await login(a, reg.user.email);
    expect(await me(a, reg.accessToken)).toBe(200);
    expect(await me(b, reg.accessToken)).toBe(200); // both processes have the session cached as live
    const out = await a.request('/api/auth/logout', {
      method: 'POST',
      json: { refreshToken: reg.refreshToken },
    });
    expect(out.status).toBe(204);
    await refusedWithin('logged-out access token refused on B', () => me(b, reg.accessToken));
    await refusedWithin('logged-out access token refused on A', () => me(a, reg.accessToken));
    expect((await refresh(b, reg.refreshToken)).status).toBe(401);
    expect(await me(b, other.accessToken)).toBe(200);
    // Unknown and malformed tokens: 204 too; no token: 400. No Authorization header needed.
    expect(
      (await a.request('/api/auth/logout', { method: 'POST', json: { refreshToken: reg.refreshToken } }))
        .status,
    ).toBe(204);
    expect(
      (await a.request('/api/auth/logout', { method: 'POST', json: { refreshToken: 'nope' } })).status,
    ).toBe(204);
    expect((await a.request('/api/auth/logout', { method: 'POST', json: {} })).status).toBe(400);
  });

  it('lists live sessions newest first with a cleaned User-Agent and the current one marked; ends one by id (404 otherwise)', async () => {
    const reg = await register(a);
    // A hostile User-Agent, byte for byte: tab, C1 controls as obs-text (latin1 0x85, 0x9b), escape-like
    // text, and far more than 256 characters.
    const hostile = `Mozilla/5.0\t(X11)\x85\x9b[31m <script>alert(1)</script> ${'A'.repeat(600)}`;
    const raw = await rawRequest(b.url, {
      method: 'POST',
      path: '/api/auth/login',
      headers: { 'content-type': 'application/json', 'user-agent': hostile },
      body: JSON.stringify({ email: reg.user.email, password }),
    });
    expect(raw.status).toBe(200);
    const hostileSession: Tokens = JSON.parse(raw.body);
    const third = await login(a, reg.user.email);

    const res = await b.request('/api/auth/sessions', { token: third.accessToken });
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as {
      items: Array<{
        id: number;
        createdAt: string;
        lastUsedAt: string;
        userAgent: string | null;
        current: boolean;
      }>;
    };
    expect(items).toHaveLength(3);
    expect(items.map((s) => s.current)).toEqual([true, false, false]);
    const created = items.map((s) => Date.parse(s.createdAt));
    expect([...created].sort((x, y) => y - x)).toEqual(created);
    for (const s of items)
      expect(s).toEqual({
        id: expect.any(Number),
        createdAt: expect.any(String),
        lastUsedAt: expect.any(String),
        userAgent: expect.anything(),
        current: expect.any(Boolean),
      });
    const ua = items[1].userAgent!;
    expect(ua.length).toBeLessThanOrEqual(256);
    expect(ua).not.toMatch(/\p{Cc}/u);
    expect(ua.startsWith('Mozilla/5.0 (X11)')).toBe(true);
    // The body is JSON as usual: the script text is data, not markup.
    expect(res.headers.get('content-type')).toContain('application/json');

    // Another user cannot end it (404, like an unknown id); a malformed id is 400.
    const stranger = await register(a);
    expect(
      (
        await a.request(`/api/auth/sessions/${items[1].id}`, {
          method: 'DELETE',
          token: stranger.accessToken,
        })
      ).status,
    ).toBe(404);
    expect(
      (await a.request('/api/auth/sessions/2147483647', { method: 'DELETE', token: third.accessToken }))
        .status,
    ).toBe(404);
    expect(
      (await a.request('/api/auth/sessions/0x10', { method: 'DELETE', token: third.accessToken })).status,
    ).toBe(400);

    expect(await me(b, hostileSession.accessToken)).toBe(200);
    expect(
      (await a.request(`/api/auth/sessions/${items[1].id}`, { method: 'DELETE', token: third.accessToken }))
        .status,
    ).toBe(204);
    await refusedWithin('ended session refused on B', () => me(b, hostileSession.accessToken));
    expect((await refresh(a, hostileSession.refreshToken)).status).toBe(401);
    const after = (await (await a.request('/api/auth/sessions', { token: third.accessToken })).json()) as {
      items: Array<{ id: number }>;
    };
    expect(after.items.map((s) => s.id)).toEqual([items[0].id, items[2].id]);
    // Ending it again: it is gone.
    expect(
      (await a.request(`/api/auth/sessions/${items[1].id}`, { method: 'DELETE', token: third.accessToken }))
        .status,
    ).toBe(404);
  });

  it('a password change ends every other session everywhere, the calling one goes on; a wrong current password is 401', async () => {
    const reg = await register(a);
    const other = await login(b, reg.user.email);
    expect(await me(b, other.accessToken)).toBe(200);
    const change = (token: string, currentPassword: unknown, newPassword: unknown) =>
      a.request('/api/auth/password', { method: 'POST', token, json: { currentPassword, newPassword } });
    expect((await change(reg.accessToken, 'wrong-password', 'brand-new-pass')).status).toBe(401);
    expect((await change(reg.accessToken, password, 'short')).status).toBe(400);
    expect(await me(b, other.accessToken)).toBe(200); // nothing changed yet
    expect((await change(reg.accessToken, password, 'brand-new-pass')).status).toBe(204);
    await refusedWithin('other session refused on B after the password change', () =>
      me(b, other.accessToken),
    );
    expect((await refresh(a, other.refreshToken)).status).toBe(401);
    expect(await me(b, reg.accessToken)).toBe(200);
    expect((await refresh(b, reg.refreshToken)).status).toBe(200);
    expect(
      (await a.request('/api/auth/login', { method: 'POST', json: { email: reg.user.email, password } }))
        .status,
    ).toBe(401);
    await login(b, reg.user.email, 'brand-new-pass');
  });

  it('API keys: shown once, stored hashed, work on both processes as the user (one rate budget), refused on keys/sessions/password (403), revoked everywhere within a second', async () => {
    const reg = await register(a);
    const created = await a.request('/api/auth/api-keys', {
      method: 'POST',
      token: reg.accessToken,
      json: { name: ' nightly batch ' },
    });
    expect(created.status).toBe(201);
    const key = remember(await created.json());
    expect(key).toEqual({
      id: expect.any(Number),
      name: 'nightly batch',
      key: expect.any(String),
      createdAt: expect.any(String),
      expiresAt: null,
    });

    const stored = await pg.query<{ key_hash: Buffer }>('SELECT key_hash FROM api_keys WHERE id = $1', [
      key.id,
    ]);
    expect(stored.rows[0].key_hash.toString('latin1')).not.toContain(key.key.slice(3, 20));

    const list = await (await b.request('/api/auth/api-keys', { token: reg.accessToken })).json();
    expect(list).toEqual({
      items: [
        { id: key.id, name: 'nightly batch', createdAt: key.createdAt, expiresAt: null, lastUsedAt: null },
      ],
    });
    expect(JSON.stringify(list)).not.toContain(key.key);

    const meA = await withKey(a, '/api/auth/me', key.key);
    expect(meA.status).toBe(200);
    expect((await meA.json()).id).toBe(reg.user.id);
    expect((await withKey(b, '/api/images', key.key)).status).toBe(200);
    // The image variants (their own guard) take the key too.
    const image = await uploadImage(a, reg.accessToken);
    const file = await withKey(b, `/api/images/${image}/file`, key.key);
    expect([file.status, file.headers.get('content-type')]).toEqual([200, 'image/png']);
    // The key's requests count against the user's budget, shared with the user's Bearer requests.
    const viaToken = await a.request('/api/auth/me', { token: reg.accessToken });
    const viaKey = await withKey(b, '/api/auth/me', key.key);
    expect(Number(viaKey.headers.get('x-ratelimit-remaining'))).toBe(
      Number(viaToken.headers.get('x-ratelimit-remaining')) - 1,
    );

    // Not for managing keys, sessions or the password.
    for (const [method, path] of [
      ['GET', '/api/auth/api-keys'],
      ['POST', '/api/auth/api-keys'],
      ['DELETE', `/api/auth/api-keys/${key.id}`],
      ['GET', '/api/auth/sessions'],
      ['DELETE', '/api/auth/sessions/1'],
      ['POST', '/api/auth/password'],
    ]) {
      const res = await b.request(path, {
        method,
        headers: {
          'x-api-key': key.key,
          ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        body:
          method === 'POST'
            ? JSON.stringify({ name: 'x', currentPassword: password, newPassword: 'another-pass' })
            : undefined,
      });
      expect([path, res.status]).toEqual([path, 403]);
    }

    // lastUsedAt is recorded.
    await until(
      'lastUsedAt recorded',
      async () => {
        const l = await (await a.request('/api/auth/api-keys', { token: reg.accessToken })).json();
        return typeof l.items[0].lastUsedAt === 'string';
      },
      5000,
    );

    // Another user's key id is 404; validation is 400.
    const stranger = await register(b);
    expect(
      (await a.request(`/api/auth/api-keys/${key.id}`, { method: 'DELETE', token: stranger.accessToken }))
        .status,
    ).toBe(404);
    expect(
      (await a.request('/api/auth/api-keys', { method: 'POST', token: reg.accessToken, json: { name: '' } }))
        .status,
    ).toBe(400);
    expect(
      (
        await a.request('/api/auth/api-keys', {
          method: 'POST',
          token: reg.accessToken,
          json: { name: 'x', expiresInDays: 0 },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await a.request('/api/auth/api-keys', {
          method: 'POST',
          token: reg.accessToken,
          json: { name: 'x', expiresInDays: null },
        })
      ).status,
    ).toBe(400);

    // Revoked through A: refused on B (which has it cached) within a second.
    expect((await withKey(b, '/api/auth/me', key.key)).status).toBe(200);
    expect(
      (await a.request(`/api/auth/api-keys/${key.id}`, { method: 'DELETE', token: reg.accessToken })).status,
    ).toBe(204);
    await refusedWithin(
      'revoked key refused on B',
      async () => (await withKey(b, '/api/auth/me', key.key)).status,
    );
    expect((await withKey(a, '/api/auth/me', key.key)).status).toBe(401);
    expect((await withKey(a, `/api/images/${image}/file`, key.key)).status).toBe(401);
    expect(
      (await a.request(`/api/auth/api-keys/${key.id}`, { method: 'DELETE', token: reg.accessToken })).status,
    ).toBe(404);
    expect(await (await a.request('/api/auth/api-keys', { token: reg.accessToken })).json()).toEqual({
      items: [],
    });

    // Unknown and expired keys: 401.
    expect((await withKey(a, '/api/auth/me', `sk_${randomBytes(32).toString('base64url')}`)).status).toBe(
      401,
    );
    expect((await withKey(a, '/api/auth/me', 'garbage')).status).toBe(401);
    const expiring = await (
      await a.request('/api/auth/api-keys', {
        method: 'POST',
        token: reg.accessToken,
        json: { name: 'short-lived', expiresInDays: 1 },
      })
    ).json();
    expect(Date.parse(expiring.expiresAt) - Date.parse(expiring.createdAt)).toBe(86_400_000);
    await pg.query(`UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      expiring.id,
    ]);
    expect((await withKey(b, '/api/auth/me', expiring.key)).status).toBe(401);
  });

  /** Resolves with the socket once connected, or with the connect_error message. */
  const socketTo = (p: BackendProcess, auth: Record<string, string>) =>
    new Promise<{ socket: ClientSocket; error?: string; status?: unknown }>((resolve) => {
      const socket = io(p.url, { path: '/socket.io', auth, transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      socket.once('ml:status', (status: unknown) => resolve({ socket, status }));
      socket.once('connect_error', (e: Error) => resolve({ socket, error: e.message }));
    });

  /** Resolves with the reason when `socket` is disconnected within one second; rejects otherwise. */
  const disconnectedWithin = (socket: ClientSocket) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still connected ${WITHIN_MS} ms later`)), WITHIN_MS);
      socket.once('disconnect', (reason: string) => {
        clearTimeout(timer);
        resolve(reason);
      });
    });

  it('Socket.IO accepts auth: { apiKey }; revoking the key or ending the session disconnects its sockets on the other process within a second and refuses new ones', async () => {
    const reg = await register(a);
    const other = await login(a, reg.user.email);
    const key = remember(
      await (
        await a.request('/api/auth/api-keys', {
          method: 'POST',
          token: reg.accessToken,
          json: { name: 'socket' },
        })
      ).json(),
    );
    const viaKey = await socketTo(b, { apiKey: key.key });
    expect(viaKey.error).toBeUndefined();
    expect(viaKey.status).toEqual({ state: expect.any(String), available: expect.any(Boolean) });
    const viaToken = await socketTo(b, { token: reg.accessToken });
    expect(viaToken.error).toBeUndefined();
    const otherSession = await socketTo(b, { token: other.accessToken });
    expect(otherSession.error).toBeUndefined();

    const keyGone = disconnectedWithin(viaKey.socket);
    expect(
      (await a.request(`/api/auth/api-keys/${key.id}`, { method: 'DELETE', token: reg.accessToken })).status,
    ).toBe(204);
    expect(await keyGone).toBe('io server disconnect');
    expect(viaToken.socket.connected).toBe(true);
    expect((await socketTo(b, { apiKey: key.key })).error).toBe('unauthorized');
    expect((await socketTo(a, { apiKey: 'sk_unknown' })).error).toBe('unauthorized');

    const sessionGone = disconnectedWithin(viaToken.socket);
    expect(
      (await a.request('/api/auth/logout', { method: 'POST', json: { refreshToken: reg.refreshToken } }))
        .status,
    ).toBe(204);
    expect(await sessionGone).toBe('io server disconnect');
    expect(otherSession.socket.connected).toBe(true); // another session of the same user stays
    expect((await socketTo(a, { token: reg.accessToken })).error).toBe('unauthorized');
  });

  it('deleting a user disconnects the sockets of its sessions and keys on every process', async () => {
    const reg = await register(a);
    const key = remember(
      await (
        await a.request('/api/auth/api-keys', {
          method: 'POST',
          token: reg.accessToken,
          json: { name: 'doomed' },
        })
      ).json(),
    );
    const [viaToken, viaKey] = [
      await socketTo(b, { token: reg.accessToken }),
      await socketTo(b, { apiKey: key.key }),
    ];
    expect([viaToken.error, viaKey.error]).toEqual([undefined, undefined]);
    const admin = await login(a, ADMIN.email, ADMIN.password);
    const gone = Promise.all([disconnectedWithin(viaToken.socket), disconnectedWithin(viaKey.socket)]);
    expect(
      (await a.request(`/api/admin/users/${reg.user.id}`, { method: 'DELETE', token: admin.accessToken }))
        .status,
    ).toBe(204);
    expect(await gone).toEqual(['io server disconnect', 'io server disconnect']);
  });

  it('an expired access token is refused while its refresh token still gives a working one', async () => {
    const reg = await register(short);
    expect(reg.expiresIn).toBe(1);
    // Wait for the expiry itself (JWT_EXPIRES_IN=1): the token is refused from then on.
    await until('access token expired', async () => (await me(short, reg.accessToken)) === 401, 5000, 100);
    expect(await me(a, reg.accessToken)).toBe(401);
    const res = await refresh(short, reg.refreshToken);
    expect(res.status).toBe(200);
    const next: Tokens = await res.json();
    expect(next.expiresIn).toBe(1);
    const fresh = await refresh(a, next.refreshToken); // a process with the default lifetime
    expect(fresh.status).toBe(200);
    const long: Tokens = await fresh.json();
    expect(long.expiresIn).toBe(900);
    expect(await me(b, long.accessToken)).toBe(200);
  });

  it('never writes a refresh token, an API key or a password into a log line', async () => {
    expect(secrets.length).toBeGreaterThan(10);
    const logs = [a, b, short].map((p) => p.logs()).join('\n');
    for (const s of [...secrets, password, 'brand-new-pass', ADMIN.password])
      expect(logs.includes(s)).toBe(false);
  });
});
