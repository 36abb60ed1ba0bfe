import { type BackendProcess, startProcesses, stopAllProcesses } from '../support/processes';

/**
 * What an operator sees first: the admin account from ADMIN_EMAIL with a lab's reserved domain, the
 * same address rule for registration, and `GET /` leading to the API documentation.
 */
let api: BackendProcess;
let all: BackendProcess;
let worker: BackendProcess;

beforeAll(async () => {
  [api, all, worker] = await startProcesses([
    { role: 'api', env: { ADMIN_EMAIL: 'ops@lab.test', ADMIN_PASSWORD: 'ops-password-1' } },
    { role: 'all', env: { QUEUE_CONCURRENCY: '1' } },
    { role: 'worker' },
  ]);
}, 90_000);

afterAll(() => stopAllProcesses());

describe('ADMIN_EMAIL=ops@lab.test', () => {
  it('starts, and that admin account exists and logs in', async () => {
    const res = await api.request('/api/auth/login', {
      method: 'POST',
      json: { email: 'ops@lab.test', password: 'ops-password-1' },
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.user).toMatchObject({ email: 'ops@lab.test', role: 'admin' });
    const metrics = await api.request('/api/queue/metrics', { token: body.accessToken });
    expect(metrics.status).toBe(200);
  });
});

describe('register and login use the same rule', () => {
  it.each(['someone@lab.test', 'someone@cluster.internal', 'someone@printer.local'])(
    'accepts %s',
    async (email) => {
      const reg = await api.request('/api/auth/register', {
        method: 'POST',
        json: { email, password: 'password-123' },
      });
      expect(reg.status).toBe(201);
      const login = await api.request('/api/auth/login', {
        method: 'POST',
        json: { email, password: 'password-123' },
      });
      expect(login.status).toBe(200);
      expect((await login.json()).user.email).toBe(email);
    },
  );

  it.each([
    'plain',
    'a@lab',
    'a@@lab.test',
    'a b@lab.test',
    'a@lab..test',
    'a@-lab.test',
    '"a"@lab.test',
    'a@[127.0.0.1]',
  ])('refuses %j with a 400 naming the field, on register and on login', async (email) => {
    for (const route of ['/api/auth/register', '/api/auth/login']) {
      const res = await api.request(route, { method: 'POST', json: { email, password: 'password-123' } });
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body).toMatchObject({ statusCode: 400, error: 'Bad Request' });
      expect(JSON.stringify(body.message)).toContain('email');
    }
  });
});

describe('GET /', () => {
  it.each([
    ['api', () => api],
    ['all', () => all],
  ])('redirects to /api/docs in an %s process (GET and HEAD)', async (_role, p) => {
    for (const method of ['GET', 'HEAD']) {
      const res = await p().request('/', { method, redirect: 'manual' });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('/api/docs');
    }
    const docs = await p().request('/');
    expect(docs.status).toBe(200);
    expect(docs.url).toMatch(/\/api\/docs\/?$/);
    expect(await docs.text()).toContain('swagger');
  });

  it('is a JSON 404 in a worker (it serves only health and metrics)', async () => {
    const res = await worker.request('/', { redirect: 'manual' });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ statusCode: 404 });
  });
});
