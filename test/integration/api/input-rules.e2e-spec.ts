import { startTestApp, TestApp, TestResponse } from '../../support/app';
import { uploadImage } from '../../support/fixtures';

const ADMIN = { email: `admin_rules_${Date.now()}@example.org`, password: 'admin-password-1' };

/** `{"a":{"a":…}}` (or `[[…]]`) nested `depth` levels. */
const nested = (depth: number, array = false): string =>
  array ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);

describe('input rules (CONTRACT §3): depth, null, path ids', () => {
  let t: TestApp;
  let token: string;
  let admin: string;
  let userId: number;
  let imageId: number;

  beforeAll(async () => {
    t = await startTestApp({ ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, QUEUE_NAME: `${process.env.QUEUE_NAME}_rules` });
    const u = await t.register();
    token = u.token;
    userId = u.user.id;
    imageId = await uploadImage(t, token);
    const res = await t.request('/api/auth/login', { method: 'POST', json: ADMIN });
    admin = ((await res.json()) as { accessToken: string }).accessToken;
  });
  afterAll(() => t?.close());

  const expectClean400 = async (res: TestResponse, re?: RegExp): Promise<void> => {
    const text = await res.text();
    expect({ status: res.status, text }).toEqual({ status: 400, text: expect.any(String) });
    const body = JSON.parse(text) as { statusCode: number; error: string; message: string | string[] };
    expect(body).toEqual({ statusCode: 400, error: 'Bad Request', message: expect.anything() });
    if (re) expect([body.message].flat().join('; ')).toMatch(re);
  };
  const raw = (path: string, method: string, body: string, tok?: string) =>
    t.request(path, { method, token: tok, body, headers: { 'content-type': 'application/json' } });

  const bodyRoutes = (): Array<[string, string, string | undefined]> => [
    ['/api/auth/register', 'POST', undefined],
    ['/api/auth/login', 'POST', undefined],
    [`/api/admin/users/${userId}`, 'PATCH', admin],
    [`/api/images/${imageId}/segmentation`, 'POST', token],
    ['/api/segmentation/batch', 'POST', token],
  ];

  it('a body nested 5 000 deep → 400 on every JSON route, before validation', async () => {
    for (const [path, method, tok] of bodyRoutes()) {
      await expectClean400(await raw(path, method, nested(5000), tok), /nested deeper than 32/);
      await expectClean400(await raw(path, method, `{"imageIds":${nested(5000, true)}}`, tok), /nested deeper than 32/);
    }
  });

  it('32 levels are accepted as JSON (then validated), 33 are not', async () => {
    const at32 = await raw('/api/auth/login', 'POST', nested(32));
    await expectClean400(at32);
    expect(JSON.stringify(await (await raw('/api/auth/login', 'POST', nested(32))).json())).not.toMatch(/nested/);
    await expectClean400(await raw('/api/auth/login', 'POST', nested(33)), /nested deeper/);
    // Brackets inside strings do not count.
    const inString = JSON.stringify({ email: '[[[['.repeat(100), password: '{{{{'.repeat(100) });
    expect(JSON.stringify(await (await raw('/api/auth/login', 'POST', inString)).json())).not.toMatch(/nested/);
  });

  it('null in an optional field → 400 naming the field, nothing changes', async () => {
    await expectClean400(await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json: { priority: null } }), /priority/);
    await expectClean400(await t.request('/api/segmentation/batch', { method: 'POST', token, json: { imageIds: [imageId], priority: null } }), /priority/);
    await expectClean400(await t.request(`/api/admin/users/${userId}`, { method: 'PATCH', token: admin, json: { isPremium: null } }), /isPremium/);
    await expectClean400(await t.request(`/api/admin/users/${userId}`, { method: 'PATCH', token: admin, json: { role: null } }), /role/);
    const me = (await (await t.request('/api/auth/me', { token })).json()) as { role: string; isPremium: boolean };
    expect(me).toMatchObject({ role: 'user', isPremium: false });
    const tasks = (await (await t.request('/api/segmentation/tasks', { token })).json()) as { total: number };
    expect(tasks.total).toBe(0);
    // Absent optional fields are still fine.
    expect((await t.request(`/api/admin/users/${userId}`, { method: 'PATCH', token: admin, json: {} })).status).toBe(200);
  });

  it.each(['0x10', '1e1', '-1', '+1', '%201', '1%20', '1.0', '12345678901234567890', '2147483648', '99999999999', 'abc', '%00'])(
    'path id %s → 400 on every :id route',
    async (id) => {
      await expectClean400(await t.request(`/api/images/${id}`, { token }), /id/);
      await expectClean400(await t.request(`/api/images/${id}`, { method: 'DELETE', token }), /id/);
      await expectClean400(await t.request(`/api/images/${id}/segmentation`, { token }), /id/);
      await expectClean400(await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token, json: {} }), /id/);
      await expectClean400(await t.request(`/api/admin/users/${id}`, { method: 'PATCH', token: admin, json: {} }), /id/);
    },
  );

  it('in-range decimal ids are looked up: 2147483647 and 0 are 404, the image itself 200', async () => {
    expect((await t.request('/api/images/2147483647', { token })).status).toBe(404);
    expect((await t.request('/api/images/0', { token })).status).toBe(404);
    expect((await t.request(`/api/images/${imageId}`, { token })).status).toBe(200);
    expect((await t.request('/api/admin/users/2147483647', { method: 'PATCH', token: admin, json: {} })).status).toBe(404);
  });

  it.each(['abc', '1', '00000000-0000-0000-0000-00000000000g', `${'a'.repeat(36)}`])('task id %s → 400 on every :taskId route', async (id) => {
    await expectClean400(await t.request(`/api/segmentation/tasks/${id}`, { token }), /taskId/);
    await expectClean400(await t.request(`/api/segmentation/tasks/${id}`, { method: 'DELETE', token }), /taskId/);
    await expectClean400(await t.request(`/api/queue/dead-letter/${id}/retry`, { method: 'POST', token: admin }), /taskId/);
  });

  it('a well-formed unknown task id is 404', async () => {
    const id = '3f1c7a52-9d1e-4b8e-8f7a-2b6c1d0e9a11';
    expect((await t.request(`/api/segmentation/tasks/${id}`, { token })).status).toBe(404);
    expect((await t.request(`/api/queue/dead-letter/${id}/retry`, { method: 'POST', token: admin })).status).toBe(404);
  });
});
