import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { BackendProcess, startProcesses, stopAllProcesses } from '../support/processes';

/**
 * What the per-process user cache, the coalesced enqueue and the shared rate limit must never
 * weaken, across two real api processes of one deployment (same database, Redis and QUEUE_NAME):
 * a user change made through one process applies to the very next request on the other; the rate
 * limit and MAX_PENDING_TASKS_PER_USER stay exact under concurrent requests spread over both; an
 * image never gets two open tasks. Also: request log lines carry the request id and no secret.
 */
const RATE = 150;
const MAX_PENDING = 25;
const JWT_SECRET = `jwt-${randomBytes(12).toString('hex')}`;
const ADMIN_EMAIL = `admin_${randomBytes(4).toString('hex')}@example.org`;
const ADMIN_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;

describe('auth, rate limit and enqueue invariants across two api processes', () => {
  let a: BackendProcess;
  let b: BackendProcess;
  let pg: Client;
  let admin: string;

  beforeAll(async () => {
    const env = {
      QUEUE_NAME: `${process.env.QUEUE_NAME}_authc_${Date.now()}`,
      RATE_LIMIT_PER_MINUTE: String(RATE),
      MAX_PENDING_TASKS_PER_USER: String(MAX_PENDING),
      JWT_SECRET,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      LOG_LEVEL: 'info',
      NODE_ENV: 'production',
    };
    [a, b] = await startProcesses([
      { role: 'api', env, name: 'apiA' },
      { role: 'api', env, name: 'apiB' },
    ]);
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
    const login = await a.request('/api/auth/login', { method: 'POST', json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    admin = (await login.json()).accessToken;
  });

  afterAll(async () => {
    await pg?.end();
    await stopAllProcesses();
  });

  /** Image rows of `userId` made in SQL (enqueue never reads the file; nothing consumes the queue). */
  const images = async (userId: number, n: number): Promise<number[]> =>
    (
      await pg.query<{ id: number }>(
        `INSERT INTO images (user_id, original_name, storage_path, mime_type, size_bytes, width, height)
         SELECT $1, 'x.png', 'authc/' || $2 || '/' || g || '.png', 'image/png', 10, 64, 48 FROM generate_series(1, $3::int) g RETURNING id`,
        [userId, randomBytes(6).toString('hex'), n],
      )
    ).rows.map((r) => r.id);

  it('a role change made through one process applies to the next request on the other, both ways', async () => {
    const u = await a.register();
    // B caches the user as a plain user.
    expect((await b.request('/api/queue/metrics', { token: u.token })).status).toBe(403);
    expect((await a.request(`/api/admin/users/${u.user.id}`, { method: 'PATCH', token: admin, json: { role: 'admin' } })).status).toBe(200);
    expect((await b.request('/api/queue/metrics', { token: u.token })).status).toBe(200);
    // Revoked admin rights: the next request on B is refused.
    expect((await a.request(`/api/admin/users/${u.user.id}`, { method: 'PATCH', token: admin, json: { role: 'user' } })).status).toBe(200);
    expect((await b.request('/api/queue/metrics', { token: u.token })).status).toBe(403);
  });

  it('a premium change applies to the next request on the other process', async () => {
    const u = await a.register();
    const [img] = await images(u.user.id, 1);
    const ask = () => b.request(`/api/images/${img}/segmentation`, { method: 'POST', token: u.token, json: { priority: 8 } });
    expect((await ask()).status).toBe(400); // non-premium: at most 5
    expect((await a.request(`/api/admin/users/${u.user.id}`, { method: 'PATCH', token: admin, json: { isPremium: true } })).status).toBe(200);
    expect((await ask()).status).toBe(202);
  });

  it('a user deleted through one process is refused (401) on the next request on the other', async () => {
    const u = await a.register();
    await images(u.user.id, 2);
    expect((await b.request('/api/auth/me', { token: u.token })).status).toBe(200);
    expect((await b.request('/api/images', { token: u.token })).status).toBe(200); // cached on B
    expect((await a.request(`/api/admin/users/${u.user.id}`, { method: 'DELETE', token: admin })).status).toBe(204);
    expect((await b.request('/api/images', { token: u.token })).status).toBe(401);
    expect((await a.request('/api/images', { token: u.token })).status).toBe(401);
    expect((await pg.query('SELECT count(*)::int AS n FROM images WHERE user_id = $1', [u.user.id])).rows[0].n).toBe(0);
    expect((await a.request(`/api/admin/users/${u.user.id}`, { method: 'DELETE', token: admin })).status).toBe(404);
    // Only admins delete users.
    const v = await a.register();
    expect((await b.request(`/api/admin/users/${v.user.id}`, { method: 'DELETE', token: v.token })).status).toBe(403);
  });

  it('counts the rate limit exactly under concurrent requests spread over both processes', async () => {
    const u = await a.register();
    const n = RATE + 60;
    const statuses = await Promise.all(
      Array.from({ length: n }, (_, i) => (i % 2 ? a : b).request('/api/images', { token: u.token, timeoutMs: 30_000 }).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(RATE);
    expect(statuses.filter((s) => s === 429)).toHaveLength(n - RATE);
    const limited = await a.request('/api/images', { token: u.token });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('keeps MAX_PENDING_TASKS_PER_USER exact under concurrent single and batch enqueues on both processes', async () => {
    const u = await a.register();
    const ids = await images(u.user.id, 61); // the 61st is never enqueued above: it checks the limit
    const singles = ids.slice(0, 40).map((id, i) =>
      (i % 2 ? a : b).request(`/api/images/${id}/segmentation`, { method: 'POST', token: u.token, json: {}, timeoutMs: 30_000 }).then((r) => ({ n: 1, status: r.status })),
    );
    const batches = [0, 1, 2, 3].map((k) =>
      (k % 2 ? b : a)
        .request('/api/segmentation/batch', { method: 'POST', token: u.token, json: { imageIds: ids.slice(40 + k * 5, 45 + k * 5) }, timeoutMs: 30_000 })
        .then((r) => ({ n: 5, status: r.status })),
    );
    const results = await Promise.all([...singles, ...batches]);
    const accepted = results.filter((r) => r.status === 202).reduce((s, r) => s + r.n, 0);
    expect(results.every((r) => r.status === 202 || r.status === 429)).toBe(true);
    const open = (await pg.query(`SELECT count(*)::int AS n FROM queue_jobs WHERE user_id = $1 AND status IN ('queued', 'processing')`, [u.user.id])).rows[0].n;
    expect(open).toBe(accepted);
    // Exactly up to the limit: nothing accepted past it, and the limit is reached (requests of one
    // image each can always fill the last free places).
    expect(open).toBe(MAX_PENDING);
    expect((await b.request(`/api/images/${ids[60]}/segmentation`, { method: 'POST', token: u.token, json: {} })).status).toBe(429);
  });

  it('gives an image exactly one open task under concurrent enqueues of it on both processes', async () => {
    const u = await a.register();
    const [img, other] = await images(u.user.id, 2);
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? a : b)
          .request(i % 3 === 0 ? '/api/segmentation/batch' : `/api/images/${img}/segmentation`, {
            method: 'POST',
            token: u.token,
            json: i % 3 === 0 ? { imageIds: [other, img] } : {},
            timeoutMs: 30_000,
          })
          .then(async (r) => ({ status: r.status, body: await r.json() })),
      ),
    );
    const singles = results.filter((_, i) => i % 3 !== 0);
    const batches = results.filter((_, i) => i % 3 === 0);
    const taskOf = (r: { body: { taskId?: string; tasks?: Array<{ imageId: number; taskId: string }> } }) =>
      r.body.taskId ?? r.body.tasks!.find((t) => t.imageId === img)!.taskId;
    const ids = new Set(results.map(taskOf));
    expect(ids.size).toBe(1);
    // Exactly one single request created it (202) unless a batch did; the others got it back (200).
    expect(singles.filter((r) => r.status === 202).length + batches.filter((r) => r.status === 202).length).toBeGreaterThanOrEqual(1);
    expect(singles.filter((r) => r.status === 202).length).toBeLessThanOrEqual(1);
    expect(singles.every((r) => r.status === 200 || r.status === 202)).toBe(true);
    const open = await pg.query(`SELECT image_id, count(*)::int AS n FROM queue_jobs WHERE user_id = $1 AND status IN ('queued', 'processing') GROUP BY image_id ORDER BY image_id`, [u.user.id]);
    expect(open.rows).toEqual([
      { image_id: img, n: 1 },
      { image_id: other, n: 1 },
    ]);
  });

  it('refuses an image that is not the user\'s (404) and changes nothing', async () => {
    const owner = await a.register();
    const thief = await a.register();
    const [img] = await images(owner.user.id, 1);
    const [mine] = await images(thief.user.id, 1);
    expect((await b.request(`/api/images/${img}/segmentation`, { method: 'POST', token: thief.token, json: {} })).status).toBe(404);
    expect((await b.request('/api/segmentation/batch', { method: 'POST', token: thief.token, json: { imageIds: [mine, img] } })).status).toBe(404);
    expect((await pg.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1)', [[img, mine]])).rows[0].n).toBe(0);
  });

  it('logs each request with its id (echoed as X-Request-Id) and never a token, password or secret', async () => {
    const email = `log_${randomBytes(4).toString('hex')}@example.org`;
    const password = `secret-pw-${randomBytes(6).toString('hex')}`;
    const reg = await a.request('/api/auth/register', { method: 'POST', json: { email, password }, headers: { 'x-request-id': 'req-register-1' } });
    const token = (await reg.json()).accessToken as string;
    const res = await a.request('/api/images?page=1&limit=5', { token, headers: { 'x-request-id': 'req-list-42' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-list-42');
    const generated = (await a.request('/api/auth/me', { token })).headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const lines = await waitForLines(a, (l) => l.some((x) => x.req?.id === generated));
    const line = lines.find((x) => x.req?.id === 'req-list-42');
    expect(line).toMatchObject({ msg: 'request completed', req: { method: 'GET', url: '/api/images' }, res: { statusCode: 200 } });
    expect(lines.find((x) => x.req?.id === 'req-register-1')).toMatchObject({ res: { statusCode: 201 } });
    const logs = a.logs();
    for (const secret of [token, password, JWT_SECRET, ADMIN_PASSWORD, admin, process.env.DATABASE_URL!]) expect(logs).not.toContain(secret);
    // Probes are not logged.
    await a.request('/api/health/live');
    expect(lines.some((x) => String(x.req?.url).startsWith('/api/health'))).toBe(false);
  });
});

type LogLine = { msg?: string; req?: { id?: string; method?: string; url?: string }; res?: { statusCode?: number } };

/** JSON log lines of `p` once `ok` holds for them (lines are flushed at least every 200 ms). */
async function waitForLines(p: BackendProcess, ok: (lines: LogLine[]) => boolean): Promise<LogLine[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = p
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
    if (ok(lines) || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('log format by NODE_ENV (issue 10: `npm run start:dev` prints readable lines)', () => {
  afterAll(() => stopAllProcesses());

  it('prints pino-pretty lines when NODE_ENV is unset (development, as under `npm run start:dev`)', async () => {
    const [dev] = await startProcesses([
      { role: 'api', name: 'apiDev', env: { NODE_ENV: undefined, LOG_LEVEL: 'info', QUEUE_NAME: `${process.env.QUEUE_NAME}_dev_${Date.now()}` } },
    ]);
    const u = await dev.register();
    expect((await dev.request('/api/auth/me', { token: u.token, headers: { 'x-request-id': 'dev-req-7' } })).status).toBe(200);
    // Lines are flushed in batches (every 200 ms): wait for this request's own line, not any line.
    const deadline = Date.now() + 5000;
    while (!dev.stdout().includes('dev-req-7') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const out = dev.stdout().replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), ''); // without colours
    expect(out).toMatch(/INFO.*request completed/);
    expect(out).toContain('dev-req-7');
    expect(out.split('\n').filter((l) => l.trim().startsWith('{'))).toEqual([]);
    expect(out).not.toContain(u.token);
  });
});
