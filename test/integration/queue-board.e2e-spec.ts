import { startTestApp, TestApp } from '../support/app';
import { uploadImage } from '../support/fixtures';
import { SegmentationQueue } from '../../src/queue/segmentation-queue';

const ADMIN = { email: `admin_board_${Date.now()}@example.org`, password: 'admin-password-1' };
const BOARD = '/api/admin/queues';

const basic = (email: string, password: string) => `Basic ${Buffer.from(`${email}:${password}`).toString('base64')}`;

interface BoardQueue {
  name: string;
  counts: Record<string, number>;
  jobs: Array<{ id: string }>;
  readOnlyMode: boolean;
  isPaused: boolean;
}

describe('queue dashboard (bull-board at /api/admin/queues, admins only)', () => {
  let t: TestApp;
  let adminToken: string;
  let user: { token: string; email: string; password: string };
  let queueNames: string[];

  const board = (path: string, authorization?: string, init: RequestInit = {}) =>
    t.request(`${BOARD}${path}`, { ...init, headers: authorization ? { authorization } : {} });
  const boardQueues = async (authorization: string, query = ''): Promise<BoardQueue[]> => {
    const res = await board(`/api/queues${query}`, authorization);
    expect(res.status).toBe(200);
    return ((await res.json()) as { queues: BoardQueue[] }).queues;
  };

  beforeAll(async () => {
    // An `api` process: it serves the board and only enqueues, so a queued job stays waiting.
    t = await startTestApp(
      { QUEUE_NAME: `${process.env.QUEUE_NAME}_board`, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password },
      'api',
    );
    const login = await t.request('/api/auth/login', { method: 'POST', json: ADMIN });
    expect(login.status).toBe(200);
    adminToken = (await login.json()).accessToken;
    const password = 'user-password-1';
    const reg = await t.register(undefined, password);
    user = { token: reg.token, email: reg.user.email, password };
    queueNames = t.app
      .get(SegmentationQueue)
      .bullQueues()
      .map((q) => q.name);
  });
  afterAll(() => t.close());

  it('answers 401 with a Basic challenge without credentials, on pages, JSON API and static assets', async () => {
    for (const path of ['', '/', '/queue/segmentation', '/api/queues', '/static/images/logo.svg']) {
      const res = await board(path);
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="spheroseg queues"/);
      expect(await res.json()).toMatchObject({ statusCode: 401, error: 'Unauthorized' });
    }
    for (const bad of ['Basic !!!', 'Basic ' + Buffer.from('no-colon').toString('base64'), 'Bearer not-a-jwt', 'Digest x']) {
      const res = await board('/api/queues', bad);
      expect({ bad, status: res.status }).toEqual({ bad, status: 401 });
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
    }
  });

  it("answers 403 to a normal user's token and to a normal user's basic credentials", async () => {
    const byToken = await board('', `Bearer ${user.token}`);
    expect(byToken.status).toBe(403);
    expect(byToken.headers.get('www-authenticate')).toBeNull();
    const byPassword = await board('/api/queues', basic(user.email, user.password));
    expect(byPassword.status).toBe(403);
    expect(await byPassword.json()).toMatchObject({ statusCode: 403, error: 'Forbidden' });
  });

  it('answers 401 to a wrong admin password and to an unknown email', async () => {
    const wrong = await board('', basic(ADMIN.email, 'not-the-password'));
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic realm="spheroseg queues"/);
    const unknown = await board('', basic(`nobody_${Date.now()}@example.org`, ADMIN.password));
    expect(unknown.status).toBe(401);
  });

  it("serves the board's HTML and its assets to an admin's token", async () => {
    const res = await board('', `Bearer ${adminToken}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain(`<base href="${BOARD}/"`);
    const script = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect((await board(`/${script}`)).status).toBe(401);
    const asset = await board(`/${script}`, `Bearer ${adminToken}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
  });

  it("lists the segmentation queues with real counts to an admin's basic credentials", async () => {
    const auth = basic(ADMIN.email.toUpperCase(), ADMIN.password); // emails match case-insensitively, as on login
    expect((await board('', auth)).status).toBe(200);

    const before = await boardQueues(auth);
    expect(before.map((q) => q.name).sort()).toEqual([...queueNames].sort());
    expect(queueNames.length).toBeGreaterThanOrEqual(2); // the work queue(s) and the dead-letter queue
    const waiting = (qs: BoardQueue[]) => qs.reduce((n, q) => n + q.counts.waiting, 0);
    expect(waiting(before)).toBe(0);

    const imageId = await uploadImage(t, user.token);
    const enq = await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token: user.token, json: {} });
    expect(enq.status).toBe(202);
    const { taskId } = (await enq.json()) as { taskId: string };

    const after = await boardQueues(auth);
    expect(waiting(after)).toBe(1);
    const listed: string[] = [];
    for (const name of queueNames) {
      const qs = await boardQueues(auth, `?activeQueue=${encodeURIComponent(name)}&status=waiting`);
      listed.push(...qs.flatMap((q) => q.jobs.map((j) => String(j.id))));
    }
    expect(listed).toEqual([taskId]);
  });

  it('keeps the queues read-only on the board: changes go through the API', async () => {
    const auth = `Bearer ${adminToken}`;
    expect((await boardQueues(auth)).every((q) => q.readOnlyMode)).toBe(true);
    for (const name of queueNames) {
      const pause = await board(`/api/queues/${encodeURIComponent(name)}/pause`, auth, { method: 'PUT' });
      expect({ name, status: pause.status }).toEqual({ name, status: 405 });
      const empty = await board(`/api/queues/${encodeURIComponent(name)}/empty`, auth, { method: 'PUT' });
      expect({ name, status: empty.status }).toEqual({ name, status: 405 });
    }
    const queues = await boardQueues(auth);
    expect(queues.some((q) => q.isPaused)).toBe(false);
    expect(queues.reduce((n, q) => n + q.counts.waiting, 0)).toBe(1);
  });

  // Last in this file: it exhausts this IP's password-check budget for a minute.
  it('limits password checks per IP (429) but keeps a remembered admin password working', async () => {
    const admin = basic(ADMIN.email, ADMIN.password);
    expect((await board('/api/queues', admin)).status).toBe(200); // remembered from the test above
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await board('/api/queues', basic(ADMIN.email, `guess-${i}`))).status);
    expect(statuses).toContain(401);
    expect(statuses.at(-1)).toBe(429);
    const blocked = await board('/api/queues', basic(ADMIN.email, 'guess-x'));
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await board('/api/queues', admin)).status).toBe(200);
    expect((await board('/api/queues', `Bearer ${adminToken}`)).status).toBe(200);
  });
});

describe('queue dashboard in a worker process', () => {
  let w: TestApp;
  beforeAll(async () => {
    w = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_board_worker` }, 'worker');
  });
  afterAll(() => w.close());

  it('is not mounted (404), while the worker still serves health', async () => {
    expect((await w.request('/api/health/live')).status).toBe(200);
    for (const path of [BOARD, `${BOARD}/api/queues`]) {
      const res = await w.request(path, { headers: { authorization: basic(ADMIN.email, ADMIN.password) } });
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
  });
});
