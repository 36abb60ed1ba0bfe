import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { startTestApp, TestApp, TestResponse } from '../../support/app';
import { makePng, uploadImage } from '../../support/fixtures';

/**
 * CONTRACT §3 "Projects and sharing", the whole role matrix with the real PostgreSQL and Redis: each
 * operation on an image, task, result, variant, export or project × owner, editor, viewer and a
 * stranger, on project images and on personal images. A stranger gets 404 (as for a missing id), a
 * member whose role is too low 403. Destructive operations get a fresh resource for every caller.
 */
type Who = 'owner' | 'editor' | 'viewer' | 'stranger';
const WHO: Who[] = ['owner', 'editor', 'viewer', 'stranger'];

describe('projects: the role matrix', () => {
  let t: TestApp;
  let pg: Client;
  const tok = {} as Record<Who, string>;
  const uid = {} as Record<Who, number>;
  let projectId: number;

  const req = (
    token: string,
    path: string,
    init: RequestInit & { json?: unknown } = {},
  ): Promise<TestResponse> => t.request(path, { ...init, token });
  const upload = async (token: string, path: string): Promise<TestResponse> => {
    const form = new FormData();
    form.append('file', new Blob([await makePng()]), 'x.png');
    return fetch(`${t.url}${path}`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${token}` },
    }) as Promise<TestResponse>;
  };
  /** An image of the project uploaded by the editor (through the API). */
  const projectImage = async (): Promise<number> => {
    const res = await upload(tok.editor, `/api/projects/${projectId}/images`);
    expect(res.status).toBe(201);
    const body = await res.json();
    expect(body.projectId).toBe(projectId);
    return body.id as number;
  };
  const personalImage = (): Promise<number> => uploadImage(t, tok.owner);
  /** A completed task with a current result for `imageId` (written in SQL: no worker runs here). */
  const withResult = async (imageId: number, userId: number): Promise<string> => {
    const taskId = randomUUID();
    await pg.query(
      `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority, progress) VALUES ($1::uuid, $1::text, $2, $3, 'completed', 1, 100)`,
      [taskId, imageId, userId],
    );
    await pg.query(
      `INSERT INTO segmentation_results (task_id, image_id, image_width, image_height, processing_time_ms, polygon_count, polygons, version, spheroid_count)
       VALUES ($1, $2, 64, 48, 5, 1, $3::jsonb, 1, 1)`,
      [
        taskId,
        imageId,
        JSON.stringify([
          {
            id: 1,
            type: 'external',
            parentId: null,
            points: [
              [10, 10],
              [40, 10],
              [40, 30],
              [10, 30],
            ],
            class: 'spheroid',
            confidence: 0.9,
            features: { area: 600 },
          },
        ]),
      ],
    );
    await pg.query(`UPDATE images SET segmentation_status = 'completed' WHERE id = $1`, [imageId]);
    return taskId;
  };
  /** An open (queued) task of `imageId`, queued through the API by `token`. */
  const openTask = async (imageId: number, token = tok.owner): Promise<string> => {
    const res = await req(token, `/api/images/${imageId}/segmentation`, { method: 'POST', json: {} });
    expect([200, 202]).toContain(res.status);
    return (await res.json()).taskId as string;
  };

  beforeAll(async () => {
    t = await startTestApp(
      { QUEUE_NAME: `${process.env.QUEUE_NAME}_matrix`, MAX_PENDING_TASKS_PER_USER: '100000' },
      'api',
    );
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
    for (const w of WHO) {
      const u = await t.register();
      tok[w] = u.token;
      uid[w] = u.user.id;
    }
    const p = await req(tok.owner, '/api/projects', {
      method: 'POST',
      json: { name: 'Lab', description: 'spheroids\nday 3' },
    });
    expect(p.status).toBe(201);
    projectId = (await p.json()).id;
    const emails = Object.fromEntries(
      await Promise.all(WHO.map(async (w) => [w, (await (await req(tok[w], '/api/auth/me')).json()).email])),
    );
    for (const [w, role] of [
      ['editor', 'editor'],
      ['viewer', 'viewer'],
    ] as const) {
      const m = await req(tok.owner, `/api/projects/${projectId}/members`, {
        method: 'POST',
        json: { email: emails[w], role },
      });
      expect(m.status).toBe(201);
    }
  });
  afterAll(async () => {
    await pg?.end();
    await t?.close();
  });

  interface Case {
    name: string;
    /** Makes what one caller's attempt needs (fresh for destructive operations). */
    setup: () => Promise<Record<string, unknown>>;
    call: (token: string, c: Record<string, unknown>) => Promise<TestResponse>;
    expect: Record<Who, number | number[]>;
  }

  const READ = { owner: 200, editor: 200, viewer: 200, stranger: 404 };
  const OWNER_ONLY_PERSONAL = (ok: number | number[]) => ({
    owner: ok,
    editor: 404,
    viewer: 404,
    stranger: 404,
  });
  const EDIT = (ok: number | number[]) => ({ owner: ok, editor: ok, viewer: 403, stranger: 404 });
  const MANAGE = (ok: number | number[]) => ({ owner: ok, editor: 403, viewer: 403, stranger: 404 });

  /** The operations on one image (project or personal), with the expectations for that kind. */
  const imageCases = (kind: 'project' | 'personal'): Case[] => {
    const make = kind === 'project' ? projectImage : personalImage;
    const read = kind === 'project' ? READ : OWNER_ONLY_PERSONAL(200);
    const edit = (ok: number | number[]) => (kind === 'project' ? EDIT(ok) : OWNER_ONLY_PERSONAL(ok));
    let shared: Promise<{ image: number; task: string }> | undefined;
    const withShared = () =>
      (shared ??= (async () => {
        const image = await make();
        return { image, task: await withResult(image, uid.owner) };
      })());
    const file = async (token: string, image: number, variant: string) =>
      req(token, `/api/images/${image}/${variant}`);
    return [
      {
        name: 'GET image',
        setup: withShared,
        call: (tk, c) => req(tk, `/api/images/${c.image}`),
        expect: read,
      },
      {
        name: 'GET file',
        setup: withShared,
        call: (tk, c) => file(tk, c.image as number, 'file'),
        expect: read,
      },
      {
        name: 'GET thumbnail',
        setup: withShared,
        call: (tk, c) => file(tk, c.image as number, 'thumbnail'),
        expect: read,
      },
      {
        name: 'GET overlay',
        setup: withShared,
        call: (tk, c) => file(tk, c.image as number, 'segmentation/overlay'),
        expect: read,
      },
      {
        name: 'GET result',
        setup: withShared,
        call: (tk, c) => req(tk, `/api/images/${c.image}/segmentation`),
        expect: read,
      },
      {
        name: 'GET task',
        setup: withShared,
        call: (tk, c) => req(tk, `/api/segmentation/tasks/${c.task}`),
        expect: read,
      },
      {
        name: 'GET export by ids',
        setup: withShared,
        call: (tk, c) => req(tk, `/api/segmentation/export?format=csv&imageIds=${c.image}`),
        expect: read,
      },
      {
        name: 'GET result versions',
        setup: withShared,
        call: (tk, c) => req(tk, `/api/images/${c.image}/segmentation/versions`),
        expect: read,
      },
      {
        name: 'PUT result (an edit)',
        setup: async () => {
          const image = await make();
          await withResult(image, uid.owner);
          return { image };
        },
        call: (tk, c) =>
          req(tk, `/api/images/${c.image}/segmentation`, {
            method: 'PUT',
            json: { baseVersion: 1, polygons: [] },
          }),
        expect: edit(200),
      },
      {
        name: 'POST segmentation',
        setup: async () => ({ image: await make() }),
        call: (tk, c) => req(tk, `/api/images/${c.image}/segmentation`, { method: 'POST', json: {} }),
        expect: edit(202),
      },
      {
        name: 'POST batch',
        setup: async () => ({ image: await make() }),
        call: (tk, c) =>
          req(tk, '/api/segmentation/batch', { method: 'POST', json: { imageIds: [c.image] } }),
        expect: edit(202),
      },
      {
        name: 'DELETE task',
        setup: async () => ({ task: await openTask(await make()) }),
        call: (tk, c) => req(tk, `/api/segmentation/tasks/${c.task}`, { method: 'DELETE' }),
        expect: edit(200),
      },
      {
        name: 'DELETE image',
        setup: async () => ({ image: await make() }),
        call: (tk, c) => req(tk, `/api/images/${c.image}`, { method: 'DELETE' }),
        expect: edit(204),
      },
      {
        name: 'PATCH image → personal',
        setup: async () => ({ image: await make() }),
        call: (tk, c) => req(tk, `/api/images/${c.image}`, { method: 'PATCH', json: { projectId: null } }),
        expect: edit(200),
      },
    ];
  };

  const projectCases = (): Case[] => {
    const none = async () => ({});
    return [
      { name: 'GET project', setup: none, call: (tk) => req(tk, `/api/projects/${projectId}`), expect: READ },
      {
        name: 'GET members',
        setup: none,
        call: (tk) => req(tk, `/api/projects/${projectId}/members`),
        expect: READ,
      },
      {
        name: 'GET project images',
        setup: none,
        call: (tk) => req(tk, `/api/projects/${projectId}/images`),
        expect: READ,
      },
      {
        name: 'GET project tasks',
        setup: none,
        call: (tk) => req(tk, `/api/segmentation/tasks?projectId=${projectId}`),
        expect: READ,
      },
      {
        name: 'GET project export',
        setup: none,
        call: (tk) => req(tk, `/api/segmentation/export?format=coco&projectId=${projectId}`),
        expect: READ,
      },
      {
        name: 'PATCH project',
        setup: none,
        call: (tk) => req(tk, `/api/projects/${projectId}`, { method: 'PATCH', json: { name: 'Lab 2' } }),
        expect: EDIT(200),
      },
      {
        name: 'POST project image',
        setup: none,
        call: (tk) => upload(tk, `/api/projects/${projectId}/images`),
        expect: EDIT(201),
      },
      {
        name: 'POST project segmentation',
        setup: async () => ({ image: await projectImage() }),
        call: (tk) =>
          req(tk, `/api/projects/${projectId}/segmentation`, {
            method: 'POST',
            json: { scope: 'unsegmented' },
          }),
        expect: EDIT(202),
      },
      {
        name: 'PATCH personal image → project',
        setup: async () => ({ image: await personalImage() }),
        // The owner's personal image: only the owner may move it (a stranger to it gets 404).
        call: (tk, c) => req(tk, `/api/images/${c.image}`, { method: 'PATCH', json: { projectId } }),
        expect: { owner: 200, editor: 404, viewer: 404, stranger: 404 },
      },
      {
        name: 'POST member',
        setup: async () => ({ email: `inv_${randomUUID().slice(0, 8)}@example.org` }),
        call: (tk, c) =>
          req(tk, `/api/projects/${projectId}/members`, {
            method: 'POST',
            json: { email: c.email, role: 'viewer' },
          }),
        expect: MANAGE(201),
      },
      {
        name: 'PATCH member',
        setup: async () => {
          const m = await req(tok.owner, `/api/projects/${projectId}/members`, {
            method: 'POST',
            json: { email: `inv_${randomUUID().slice(0, 8)}@example.org`, role: 'viewer' },
          });
          return { member: (await m.json()).id };
        },
        call: (tk, c) =>
          req(tk, `/api/projects/${projectId}/members/${c.member}`, {
            method: 'PATCH',
            json: { role: 'editor' },
          }),
        expect: MANAGE(200),
      },
      {
        name: 'DELETE another member',
        setup: async () => {
          const m = await req(tok.owner, `/api/projects/${projectId}/members`, {
            method: 'POST',
            json: { email: `inv_${randomUUID().slice(0, 8)}@example.org`, role: 'viewer' },
          });
          return { member: (await m.json()).id };
        },
        call: (tk, c) => req(tk, `/api/projects/${projectId}/members/${c.member}`, { method: 'DELETE' }),
        expect: MANAGE(204),
      },
    ];
  };

  const run = async (cases: Case[]) => {
    const wrong: string[] = [];
    for (const c of cases) {
      for (const w of WHO) {
        const ctx = await c.setup();
        const res = await c.call(tok[w], ctx);
        await res.arrayBuffer();
        const want = c.expect[w];
        if (!(Array.isArray(want) ? want : [want]).includes(res.status))
          wrong.push(`${c.name} as ${w}: ${res.status}, expected ${String(want)}`);
      }
    }
    expect(wrong).toEqual([]);
  };

  it('project images: each operation × owner, editor, viewer, stranger', () => run(imageCases('project')));
  it('personal images (the owner’s): only the uploader, everybody else 404', () =>
    run(imageCases('personal')));
  it('the project itself: read, rename, upload, segmentation, members', () => run(projectCases()));

  it('a stranger’s 404 is the same answer as for an id that does not exist', async () => {
    const image = await projectImage();
    const a = await req(tok.stranger, `/api/images/${image}`);
    const b = await req(tok.stranger, '/api/images/2147483647');
    expect([a.status, await a.json()]).toEqual([b.status, await b.json()]);
    const p1 = await req(tok.stranger, `/api/projects/${projectId}`);
    const p2 = await req(tok.stranger, '/api/projects/2147483647');
    expect([p1.status, await p1.json()]).toEqual([p2.status, await p2.json()]);
  });

  it('deleting the project: editor and viewer 403, stranger 404, owner 204; then 404 for every member', async () => {
    const p = await req(tok.owner, '/api/projects', { method: 'POST', json: { name: 'To delete' } });
    const id = (await p.json()).id as number;
    const me = await (await req(tok.editor, '/api/auth/me')).json();
    const vm = await (await req(tok.viewer, '/api/auth/me')).json();
    await req(tok.owner, `/api/projects/${id}/members`, {
      method: 'POST',
      json: { email: me.email, role: 'editor' },
    });
    await req(tok.owner, `/api/projects/${id}/members`, {
      method: 'POST',
      json: { email: vm.email, role: 'viewer' },
    });
    const img = await upload(tok.editor, `/api/projects/${id}/images`);
    const imageId = (await img.json()).id;
    expect((await req(tok.editor, `/api/projects/${id}`, { method: 'DELETE' })).status).toBe(403);
    expect((await req(tok.viewer, `/api/projects/${id}`, { method: 'DELETE' })).status).toBe(403);
    expect((await req(tok.stranger, `/api/projects/${id}`, { method: 'DELETE' })).status).toBe(404);
    expect((await req(tok.owner, `/api/projects/${id}`, { method: 'DELETE' })).status).toBe(204);
    for (const w of ['owner', 'editor', 'viewer'] as const) {
      expect((await req(tok[w], `/api/projects/${id}`)).status).toBe(404);
      expect((await req(tok[w], `/api/images/${imageId}`)).status).toBe(404);
    }
  });

  it('a member may leave (delete their own membership); the owner’s entry cannot be changed or removed (400)', async () => {
    const p = await req(tok.owner, '/api/projects', { method: 'POST', json: { name: 'Leave' } });
    const id = (await p.json()).id as number;
    const vm = await (await req(tok.viewer, '/api/auth/me')).json();
    const m = await (
      await req(tok.owner, `/api/projects/${id}/members`, {
        method: 'POST',
        json: { email: vm.email, role: 'viewer' },
      })
    ).json();
    const list = (await (await req(tok.viewer, `/api/projects/${id}/members`)).json()).items as Array<{
      id: number;
      role: string;
    }>;
    expect(list[0].role).toBe('owner');
    const ownerEntry = list[0].id;
    expect(
      (
        await req(tok.owner, `/api/projects/${id}/members/${ownerEntry}`, {
          method: 'PATCH',
          json: { role: 'viewer' },
        })
      ).status,
    ).toBe(400);
    expect(
      (await req(tok.owner, `/api/projects/${id}/members/${ownerEntry}`, { method: 'DELETE' })).status,
    ).toBe(400);
    expect((await req(tok.viewer, `/api/projects/${id}/members/${m.id}`, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect((await req(tok.viewer, `/api/projects/${id}`)).status).toBe(404);
  });
});
