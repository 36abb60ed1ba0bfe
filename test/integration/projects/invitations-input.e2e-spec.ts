import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { startTestApp, TestApp } from '../../support/app';
import { uploadImage } from '../../support/fixtures';

/**
 * Invitations (CONTRACT §3): the same answer for an address with and without an account, activated by
 * registration; and bad input on the project routes → a clear 4xx with nothing changed.
 */
describe('projects: invitations and bad input', () => {
  let t: TestApp;
  let pg: Client;
  let owner: { token: string; user: { id: number; email: string } };
  let projectId: number;

  const counts = async () =>
    (
      await pg.query<{ p: number; m: number; i: number; q: number }>(
        `SELECT (SELECT count(*)::int FROM projects) AS p, (SELECT count(*)::int FROM project_members) AS m,
                (SELECT count(*)::int FROM images) AS i, (SELECT count(*)::int FROM queue_jobs) AS q`,
      )
    ).rows[0];

  beforeAll(async () => {
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_inv` }, 'api');
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
    owner = await t.register();
    projectId = (
      await (
        await t.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'P' } })
      ).json()
    ).id;
  });
  afterAll(async () => {
    await pg?.end();
    await t?.close();
  });

  it('inviting a registered and an unregistered address: same status and fields; registration activates the pending one', async () => {
    const registered = await t.register();
    const unregistered = `nobody_${randomBytes(4).toString('hex')}@example.org`;
    const r1 = await t.request(`/api/projects/${projectId}/members`, {
      method: 'POST',
      token: owner.token,
      json: { email: registered.user.email, role: 'editor' },
    });
    const r2 = await t.request(`/api/projects/${projectId}/members`, {
      method: 'POST',
      token: owner.token,
      json: { email: unregistered.toUpperCase(), role: 'editor' },
    });
    expect(r1.status).toBe(201);
    expect(r2.status).toBe(r1.status);
    const [b1, b2] = [await r1.json(), await r2.json()];
    expect(Object.keys(b2).sort()).toEqual(Object.keys(b1).sort());
    expect(Object.keys(b1).sort()).toEqual(['createdAt', 'email', 'id', 'pending', 'role', 'userId']);
    expect(b1).toMatchObject({ pending: false, userId: registered.user.id, role: 'editor' });
    expect(b2).toMatchObject({ pending: true, userId: null, role: 'editor', email: unregistered });
    // Refused addresses: the same error whether or not an account has them.
    for (const email of [registered.user.email, unregistered]) {
      const again = await t.request(`/api/projects/${projectId}/members`, {
        method: 'POST',
        token: owner.token,
        json: { email, role: 'viewer' },
      });
      expect(again.status).toBe(409);
      expect((await again.json()).message).toBe('this address is already a member of the project');
    }
    // The pending member registers: they are an active editor at once.
    const joined = await t.register(unregistered);
    expect((await t.request(`/api/projects/${projectId}`, { token: joined.token })).status).toBe(200);
    const members = (
      await (await t.request(`/api/projects/${projectId}/members`, { token: joined.token })).json()
    ).items;
    expect(members.find((m: { email: string }) => m.email === unregistered)).toMatchObject({
      pending: false,
      userId: joined.user.id,
      role: 'editor',
    });
    const list = await (await t.request('/api/projects', { token: joined.token })).json();
    expect(list.items.map((p: { id: number; role: string }) => [p.id, p.role])).toEqual([
      [projectId, 'editor'],
    ]);
  });

  it('project fields: names stored without control characters, descriptions keep line breaks; the view has every field', async () => {
    const res = await t.request('/api/projects', {
      method: 'POST',
      token: owner.token,
      json: { name: ' Lab\u0007 A\u202e ', description: 'line 1\nline 2\u0000\r\nline 3' },
    });
    expect(res.status).toBe(201);
    const p = await res.json();
    expect(p).toMatchObject({
      name: 'Lab A',
      description: 'line 1\nline 2\r\nline 3',
      role: 'owner',
      owner: { id: owner.user.id, email: owner.user.email },
      imageCount: 0,
    });
    expect(Object.keys(p).sort()).toEqual([
      'createdAt',
      'description',
      'id',
      'imageCount',
      'name',
      'owner',
      'role',
      'updatedAt',
    ]);
  });

  it('bad input → 400 (or 404 for an id nobody has), nothing changed', async () => {
    const img = await uploadImage(t, owner.token);
    const before = await counts();
    const cases: Array<[string, string, unknown, number]> = [
      ['POST', '/api/projects', { name: '\u0001\u0002\u0003' }, 400],
      ['POST', '/api/projects', { name: '' }, 400],
      ['POST', '/api/projects', { name: 'x'.repeat(201) }, 400],
      ['POST', '/api/projects', { name: 'ok', description: 'x'.repeat(5001) }, 400],
      ['POST', '/api/projects', { name: null }, 400],
      ['POST', '/api/projects', { name: 'ok', description: null }, 400],
      ['POST', '/api/projects', { name: 'ok', extra: 1 }, 400],
      ['PATCH', `/api/projects/${projectId}`, { name: '\u0000' }, 400],
      ['GET', '/api/projects/0x10', undefined, 400],
      ['GET', '/api/projects/-1', undefined, 400],
      ['GET', '/api/projects/2147483648', undefined, 400],
      ['GET', '/api/projects/12345678901234567890', undefined, 400],
      ['GET', '/api/projects/2147483647', undefined, 404],
      ['POST', `/api/projects/${projectId}/members`, { email: 'not-an-address', role: 'viewer' }, 400],
      ['POST', `/api/projects/${projectId}/members`, { email: 'a@example.org', role: 'owner' }, 400],
      ['POST', `/api/projects/${projectId}/members`, { email: 'a@example.org', role: 'admin' }, 400],
      ['POST', `/api/projects/${projectId}/members`, { email: 'a@example.org' }, 400],
      ['PATCH', `/api/projects/${projectId}/members/1e1`, { role: 'viewer' }, 400],
      ['PATCH', `/api/projects/${projectId}/members/2147483647`, { role: 'viewer' }, 404],
      ['GET', `/api/segmentation/tasks?projectId=abc`, undefined, 400],
      ['GET', `/api/segmentation/tasks?projectId=2147483648`, undefined, 400],
      ['GET', `/api/projects/${projectId}/images?status=bogus`, undefined, 400],
      ['GET', `/api/segmentation/export?projectId=${projectId}&imageIds=${img}`, undefined, 400],
      ['GET', `/api/segmentation/export?projectId=1e1`, undefined, 400],
      [
        'GET',
        `/api/segmentation/export?imageIds=${Array.from({ length: 10_001 }, (_, i) => i + 1).join(',')}`,
        undefined,
        400,
      ],
      ['POST', '/api/segmentation/batch', { imageIds: Array.from({ length: 10_001 }, (_, i) => i + 1) }, 400],
      ['POST', '/api/segmentation/batch', { imageIds: [img, 2147483648] }, 400],
      ['POST', '/api/segmentation/batch', { imageIds: ['1'] }, 400],
      ['POST', `/api/projects/${projectId}/segmentation`, { scope: 'some' }, 400],
      ['POST', `/api/projects/${projectId}/segmentation`, { priority: 11 }, 400],
      ['PATCH', `/api/images/${img}`, {}, 400],
      ['PATCH', `/api/images/${img}`, { projectId: '1' }, 400],
      ['PATCH', `/api/images/${img}`, { projectId: 2147483648 }, 400],
      ['PATCH', `/api/images/${img}`, { projectId: 1.5 }, 400],
      ['PATCH', `/api/images/${img}`, { projectId: 2147483647 }, 404],
    ];
    const wrong: string[] = [];
    for (const [method, path, json, status] of cases) {
      const res = await t.request(path, {
        method,
        token: owner.token,
        ...(json === undefined ? {} : { json }),
      });
      const body = await res.json();
      if (res.status !== status)
        wrong.push(`${method} ${path.slice(0, 80)}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      else expect(Object.keys(body).sort()).toEqual(['error', 'message', 'statusCode']);
    }
    expect(wrong).toEqual([]);
    expect(await counts()).toEqual(before);
    expect((await (await t.request(`/api/projects/${projectId}`, { token: owner.token })).json()).name).toBe(
      'P',
    );
    expect(
      (await (await t.request(`/api/images/${img}`, { token: owner.token })).json()).projectId,
    ).toBeNull();
  });

  it('moving images: into a project and back to the caller’s personal images; project lists and GET /api/images follow', async () => {
    const img = await uploadImage(t, owner.token);
    const moved = await t.request(`/api/images/${img}`, {
      method: 'PATCH',
      token: owner.token,
      json: { projectId },
    });
    expect(moved.status).toBe(200);
    expect((await moved.json()).projectId).toBe(projectId);
    const personal = (await (await t.request('/api/images', { token: owner.token })).json()).items.map(
      (i: { id: number }) => i.id,
    );
    expect(personal).not.toContain(img);
    const inProject = (
      await (await t.request(`/api/projects/${projectId}/images?status=none`, { token: owner.token })).json()
    ).items.map((i: { id: number }) => i.id);
    expect(inProject).toContain(img);
    expect(
      (await (await t.request(`/api/projects/${projectId}`, { token: owner.token })).json()).imageCount,
    ).toBeGreaterThanOrEqual(1);
    const back = await t.request(`/api/images/${img}`, {
      method: 'PATCH',
      token: owner.token,
      json: { projectId: null },
    });
    expect((await back.json()).projectId).toBeNull();
    expect(
      (await (await t.request('/api/images', { token: owner.token })).json()).items.map(
        (i: { id: number }) => i.id,
      ),
    ).toContain(img);
  });
});
