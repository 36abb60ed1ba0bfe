import { startTestApp, TestApp } from '../support/app';

describe('auth (CONTRACT §3 Auth)', () => {
  let t: TestApp;
  const adminEmail = `admin_${Date.now()}@example.org`;
  beforeAll(async () => {
    t = await startTestApp({ ADMIN_EMAIL: adminEmail, ADMIN_PASSWORD: 'admin-password-1' });
  });
  afterAll(() => t.close());

  it('registers, logs in and reads me', async () => {
    const email = `ada_${Date.now()}@example.org`;
    const reg = await t.request('/api/auth/register', { method: 'POST', json: { email, password: 'secret-pass' } });
    expect(reg.status).toBe(201);
    const body = await reg.json();
    expect(body.user).toEqual({ id: expect.any(Number), email, role: 'user', isPremium: false, createdAt: expect.any(String) });
    expect(typeof body.accessToken).toBe('string');

    const login = await t.request('/api/auth/login', { method: 'POST', json: { email, password: 'secret-pass' } });
    expect(login.status).toBe(200);
    const { accessToken } = await login.json();
    const me = await t.request('/api/auth/me', { token: accessToken });
    expect(me.status).toBe(200);
    expect((await me.json()).email).toBe(email);
  });

  it('refuses a taken email with 409, a short password and unknown fields with 400', async () => {
    const { user } = await t.register();
    const dup = await t.request('/api/auth/register', { method: 'POST', json: { email: user.email, password: 'another-pass' } });
    expect(dup.status).toBe(409);
    const short = await t.request('/api/auth/register', { method: 'POST', json: { email: 'x@example.org', password: 'short' } });
    expect(short.status).toBe(400);
    const sb = await short.json();
    expect(sb).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    expect(JSON.stringify(sb.message)).toContain('password');
    const extra = await t.request('/api/auth/register', {
      method: 'POST',
      json: { email: 'y@example.org', password: 'long-enough', role: 'admin' },
    });
    expect(extra.status).toBe(400);
  });

  it('answers 401 to a wrong password, a missing or a forged token', async () => {
    const { user } = await t.register(undefined, 'right-password');
    const bad = await t.request('/api/auth/login', { method: 'POST', json: { email: user.email, password: 'wrong-password' } });
    expect(bad.status).toBe(401);
    expect((await t.request('/api/auth/me')).status).toBe(401);
    const forged = await t.request('/api/auth/me', { token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.x' });
    expect(forged.status).toBe(401);
    const body = await forged.json();
    expect(body).toEqual({ statusCode: 401, error: 'Unauthorized', message: expect.any(String) });
  });

  it('lets only an admin change premium and role', async () => {
    const { token, user } = await t.register();
    const denied = await t.request(`/api/admin/users/${user.id}`, { method: 'PATCH', token, json: { isPremium: true } });
    expect(denied.status).toBe(403);

    const login = await t.request('/api/auth/login', { method: 'POST', json: { email: adminEmail, password: 'admin-password-1' } });
    expect(login.status).toBe(200);
    const admin = await login.json();
    expect(admin.user.role).toBe('admin');
    const ok = await t.request(`/api/admin/users/${user.id}`, { method: 'PATCH', token: admin.accessToken, json: { isPremium: true } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).isPremium).toBe(true);
    const me = await t.request('/api/auth/me', { token });
    expect((await me.json()).isPremium).toBe(true);
    const missing = await t.request(`/api/admin/users/99999999`, { method: 'PATCH', token: admin.accessToken, json: { role: 'admin' } });
    expect(missing.status).toBe(404);
  });

  it('keeps health and metrics public', async () => {
    expect((await t.request('/api/health/live')).status).toBe(200);
    expect((await t.request('/api/metrics')).status).toBe(200);
  });
});

describe('rate limit (RATE_LIMIT_PER_MINUTE, shared through Redis)', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const env = { RATE_LIMIT_PER_MINUTE: '5', QUEUE_NAME: `${process.env.QUEUE_NAME}_rl_${Date.now()}` };
    a = await startTestApp(env);
    b = await startTestApp(env);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('answers 429 past the limit for one user across two processes, and never limits health or metrics', async () => {
    const { token } = await a.register();
    const statuses: number[] = [];
    // One budget per user across routes and processes.
    const routes = ['/api/auth/me', '/api/images', '/api/segmentation/tasks'];
    for (let i = 0; i < 6; i++) statuses.push((await (i % 2 ? b : a).request(routes[i % 3], { token })).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses[5]).toBe(429);
    const limited = await a.request('/api/auth/me', { token });
    expect(await limited.json()).toMatchObject({ statusCode: 429, error: 'Too Many Requests' });
    const other = await b.register();
    expect((await a.request('/api/auth/me', { token: other.token })).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      expect((await a.request('/api/health/live')).status).toBe(200);
      expect((await a.request('/api/metrics')).status).toBe(200);
    }
  });
});
