import { parse as parseCsv } from 'csv-parse/sync';
import { rmSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { io, Socket } from 'socket.io-client';
import { DataSource } from 'typeorm';
import { polygonFeatures } from '../../../src/common/geometry/polygon-features';
import { makeImage } from '../../unit/images/image-fixtures';
import {
  MediaEnv,
  ngon,
  polygon,
  results,
  segmentWith,
  startMediaApp,
  uploadBody,
} from '../media/media-helpers';

type Pt = [number, number];
interface EditPolygon {
  id?: number | string;
  type: string;
  parentId: number | string | null;
  points: unknown;
  class?: unknown;
}

const W = 160;
const H = 120;
const camel = (f: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(f).map(([k, v]) => [k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()), v]),
  );

/** CONTRACT §3 "Editing a result (versions)", §6 `segmentation:updated`, the CSV `version` column. */
describe('result versions: edit, list, fetch, restore (real PostgreSQL)', () => {
  let env: MediaEnv;
  let token: string;
  let me: { id: number; email: string };
  let other: string;
  let socket: Socket;
  let db: DataSource;
  const updates: Array<Record<string, unknown>> = [];

  const req = (p: string, init: RequestInit & { json?: unknown; token?: string } = {}) =>
    env.t.request(p, { token, ...init });
  const put = (imageId: number, body: unknown, as = token) =>
    env.t.request(`/api/images/${imageId}/segmentation`, { method: 'PUT', json: body, token: as });
  const versionsOf = async (imageId: number) =>
    (await (await req(`/api/images/${imageId}/segmentation/versions`)).json()).items as Array<
      Record<string, unknown>
    >;
  const storedRows = async (imageId: number) =>
    (
      (await db.query('SELECT count(*)::int AS n FROM segmentation_results WHERE image_id = $1', [
        imageId,
      ])) as Array<{ n: number }>
    )[0].n;

  /** An image with a model result (version 1): a spheroid (id 1) with a hole (id 2), and a second spheroid (id 3). */
  const modelPolygons = () => [
    polygon(1, 'external', ngon(50, 50, 30, 32)),
    polygon(2, 'internal', ngon(50, 50, 10, 16), 1),
    polygon(3, 'external', ngon(120, 80, 20, 20)),
  ];
  async function segmentedImage(name = 'v.png'): Promise<{ imageId: number; taskId: string }> {
    const img = await uploadBody(env.t, token, await makeImage('png', W, H), name);
    const taskId = await segmentWith(env, token, img.id, results(W, H, modelPolygons()));
    return { imageId: img.id, taskId };
  }
  /** The `segmentation:updated` event of this image and version (waits for it; fails after 10 s). */
  const updated = (imageId: number, version: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const check = () => {
        const e = updates.find((u) => u.imageId === imageId && u.version === version);
        if (e) resolve(e);
        else if (Date.now() > deadline)
          reject(new Error(`no segmentation:updated for image ${imageId} version ${version}`));
        else setTimeout(check, 20);
      };
      check();
    });

  beforeAll(async () => {
    env = await startMediaApp('versions');
    const reg = await env.t.register();
    token = reg.token;
    me = reg.user;
    ({ token: other } = await env.t.register());
    db = env.t.app.get(DataSource);
    socket = io(env.t.url, { auth: { token }, transports: ['websocket'] });
    socket.on('segmentation:updated', (p: Record<string, unknown>) => updates.push(p));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
  });
  afterAll(async () => {
    socket?.close();
    await env?.t.close();
    await env?.stub.stop();
    if (env) rmSync(path.dirname(env.uploadDir), { recursive: true, force: true });
  });

  it('a model result is version 1 (source ml); an edit is the next version with server-computed features', async () => {
    const { imageId, taskId } = await segmentedImage();
    const v1 = await (await req(`/api/images/${imageId}/segmentation`)).json();
    expect(v1).toMatchObject({
      taskId,
      imageId,
      version: 1,
      source: 'ml',
      editedBy: null,
      imageWidth: W,
      imageHeight: H,
    });
    const [outer, hole] = v1.polygons; // the second spheroid (id 3) is left out of the edit

    const moved: Pt[] = ngon(60, 60, 12, 16);
    const fresh: Pt[] = [
      [100, 10],
      [150, 10],
      [150, 40],
      [100, 40],
    ];
    const res = await put(imageId, {
      baseVersion: 1,
      polygons: [
        { id: outer.id, type: 'external', parentId: null, points: outer.points }, // unchanged: keeps its confidence
        { id: hole.id, type: 'internal', parentId: outer.id, points: moved }, // moved: confidence 1
        { type: 'external', parentId: null, points: fresh, class: 'spheroid' }, // new: gets an id
      ],
    });
    expect(res.status).toBe(200);
    const v2 = await res.json();
    expect(v2).toMatchObject({
      taskId: null,
      imageId,
      version: 2,
      source: 'edit',
      editedBy: { id: me.id, email: me.email },
      processingTimeMs: 0,
    });
    expect(v2.polygons.map((p: { id: unknown }) => p.id)).toEqual([1, 2, 4]); // above every id of the base (3)
    expect(v2.polygons[0].confidence).toBe(outer.confidence);
    expect(v2.polygons[1].confidence).toBe(1);
    expect(v2.polygons[2]).toMatchObject({
      type: 'external',
      parentId: null,
      class: 'spheroid',
      confidence: 1,
    });
    for (const [i, pts] of [outer.points, moved, fresh].entries())
      expect(v2.polygons[i].features).toEqual(camel({ ...polygonFeatures(pts) }));
    expect(v2.polygons[2].features).toMatchObject({
      area: 1500,
      perimeter: 160,
      solidity: 1,
      centroidX: 125,
      centroidY: 25,
      orientation: 0,
    });

    // The current result, the version list and version N.
    expect(await (await req(`/api/images/${imageId}/segmentation`)).json()).toEqual(v2);
    expect(await (await req(`/api/images/${imageId}/segmentation?version=1`)).json()).toEqual(v1);
    expect(await (await req(`/api/images/${imageId}/segmentation?version=2`)).json()).toEqual(v2);
    expect((await req(`/api/images/${imageId}/segmentation?version=3`)).status).toBe(404);
    for (const bad of ['0', 'x', '-1', '1.5', '99999999999'])
      expect((await req(`/api/images/${imageId}/segmentation?version=${bad}`)).status).toBe(400);
    expect(await versionsOf(imageId)).toEqual([
      {
        version: 2,
        source: 'edit',
        taskId: null,
        editedBy: { id: me.id, email: me.email },
        createdAt: v2.createdAt,
        polygonCount: 3,
        spheroidCount: 2,
      },
      {
        version: 1,
        source: 'ml',
        taskId,
        editedBy: null,
        createdAt: v1.createdAt,
        polygonCount: 3,
        spheroidCount: 2,
      },
    ]);
    // The uploader is told (CONTRACT §6).
    expect(await updated(imageId, 2)).toEqual({
      imageId,
      projectId: null,
      version: 2,
      source: 'edit',
      polygonCount: 3,
      spheroidCount: 2,
    });
  });

  it('an unchanged model polygon saved as an edit keeps the features the model gave (one computation)', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', W, H), 'same.png');
    const pts: Pt[] = ngon(70, 60, 40, 40).map(([x, y]) => [Math.round(x), Math.round(y)]);
    const model = { ...polygon(1, 'external', pts), features: polygonFeatures(pts) }; // what the reference segmenter computes
    await segmentWith(env, token, img.id, results(W, H, [model]));
    const shifted = pts.map(([x, y]) => [x, y] as Pt);
    const res = await put(img.id, {
      baseVersion: 1,
      polygons: [{ id: 7, type: 'external', parentId: null, points: shifted }],
    });
    expect(res.status).toBe(200);
    expect((await res.json()).polygons[0].features).toEqual(camel({ ...model.features }));
  });

  it('a stale baseVersion is 409 naming the current version, and nothing is stored', async () => {
    const { imageId } = await segmentedImage();
    expect((await put(imageId, { baseVersion: 1, polygons: [] })).status).toBe(200);
    for (const base of [1, 0, 7]) {
      const res = await put(imageId, { baseVersion: base, polygons: [] });
      expect(res.status).toBe(409);
      const body = await res.json();
      expect(body).toMatchObject({ statusCode: 409, error: 'Conflict' });
      expect(body.message).toMatch(/current version is 2\b/);
    }
    expect(await storedRows(imageId)).toBe(2);
  });

  it('two concurrent edits of one version: exactly one wins, the other gets 409 naming the winner', async () => {
    const { imageId } = await segmentedImage();
    for (let round = 1; round <= 6; round++) {
      const [a, b] = await Promise.all([
        put(imageId, {
          baseVersion: round,
          polygons: [{ type: 'external', parentId: null, points: ngon(40, 40, 10 + round, 8) }],
        }),
        put(imageId, { baseVersion: round, polygons: [] }),
      ]);
      const statuses = [a.status, b.status].sort();
      expect(statuses).toEqual([200, 409]);
      const loser = a.status === 409 ? a : b;
      expect((await loser.json()).message).toMatch(new RegExp(`current version is ${round + 1}\\b`));
    }
    expect((await versionsOf(imageId)).map((v) => v.version)).toEqual([7, 6, 5, 4, 3, 2, 1]);
  });

  it('the database refuses a second version on the same base even when both requests pass the early check', async () => {
    // Straight at the function both writers use: the second call on base 1 is stale.
    const { imageId } = await segmentedImage();
    const call = (base: number) =>
      db.query(
        `SELECT o_outcome, o_current FROM spheroseg_new_version($1, $2, $3, NULL, $4, $5, 0, '[]'::json)`,
        [imageId, base, me.id, W, H],
      );
    const [first, second] = await Promise.all([call(1), call(1)]);
    expect([first[0].o_outcome, second[0].o_outcome].sort()).toEqual(['ok', 'stale']);
    expect([first[0].o_current, second[0].o_current]).toEqual([2, 2]);
  });

  it('an edit while a task of the image is open is 409; re-segmenting after an edit keeps the edit in the history', async () => {
    const { imageId, taskId } = await segmentedImage();
    expect((await put(imageId, { baseVersion: 1, polygons: [] })).status).toBe(200);
    const calls = env.stub.calls.length;
    env.stub.enqueue({
      latencyMs: 1500,
      body: { success: true, results: results(W, H, modelPolygons().slice(0, 1)) },
    });
    const segmenting = req(`/api/images/${imageId}/segmentation`, { method: 'POST' });
    await env.stub.waitForCalls(calls + 1); // the task is processing now
    const during = await put(imageId, { baseVersion: 2, polygons: [] });
    expect(during.status).toBe(409);
    expect((await during.json()).message).toMatch(/task/);
    const restoreDuring = await req(`/api/images/${imageId}/segmentation/versions/1/restore`, {
      method: 'POST',
      json: { baseVersion: 2 },
    });
    expect(restoreDuring.status).toBe(409);
    const done = await segmenting;
    expect(done.status).toBe(200);
    const newTask = (await done.json()).taskId;
    const items = await versionsOf(imageId);
    expect(items.map((v) => [v.version, v.source, v.taskId])).toEqual([
      [3, 'ml', newTask],
      [2, 'edit', null],
      [1, 'ml', taskId],
    ]);
    expect((await (await req(`/api/images/${imageId}/segmentation?version=2`)).json()).polygons).toEqual([]);
    expect((await (await req(`/api/images/${imageId}/segmentation`)).json()).version).toBe(3);
  });

  it('restore makes version N current again as a new edit version', async () => {
    const { imageId } = await segmentedImage();
    const v1 = await (await req(`/api/images/${imageId}/segmentation`)).json();
    expect((await put(imageId, { baseVersion: 1, polygons: [] })).status).toBe(200);
    const res = await req(`/api/images/${imageId}/segmentation/versions/1/restore`, {
      method: 'POST',
      json: { baseVersion: 2 },
    });
    expect(res.status).toBe(200);
    const v3 = await res.json();
    expect(v3).toMatchObject({
      version: 3,
      source: 'edit',
      taskId: null,
      editedBy: { id: me.id, email: me.email },
      processingTimeMs: 0,
    });
    expect(v3.polygons).toEqual(v1.polygons);
    expect(await (await req(`/api/images/${imageId}/segmentation`)).json()).toEqual(v3);
    expect(await updated(imageId, 3)).toEqual({
      imageId,
      projectId: null,
      version: 3,
      source: 'edit',
      polygonCount: 3,
      spheroidCount: 2,
    });
    // A stale base, a version that does not exist, malformed input: nothing stored.
    const stale = await req(`/api/images/${imageId}/segmentation/versions/1/restore`, {
      method: 'POST',
      json: { baseVersion: 2 },
    });
    expect(stale.status).toBe(409);
    expect((await stale.json()).message).toMatch(/current version is 3\b/);
    expect(
      (
        await req(`/api/images/${imageId}/segmentation/versions/9/restore`, {
          method: 'POST',
          json: { baseVersion: 3 },
        })
      ).status,
    ).toBe(404);
    for (const body of [
      {},
      { baseVersion: '3' },
      { baseVersion: -1 },
      { baseVersion: null },
      { baseVersion: 3, extra: 1 },
    ]) {
      expect(
        (await req(`/api/images/${imageId}/segmentation/versions/1/restore`, { method: 'POST', json: body }))
          .status,
      ).toBe(400);
    }
    expect(
      (
        await req(`/api/images/${imageId}/segmentation/versions/0x1/restore`, {
          method: 'POST',
          json: { baseVersion: 3 },
        })
      ).status,
    ).toBe(400);
    expect(await storedRows(imageId)).toBe(3);
  });

  it('polygons: [] is a valid edit, and an image without a result takes an edit on base 0', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', W, H), 'fresh.png');
    expect((await put(img.id, { baseVersion: 1, polygons: [] })).status).toBe(409);
    const res = await put(img.id, {
      baseVersion: 0,
      polygons: [{ type: 'external', parentId: null, points: ngon(80, 60, 30) }],
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ version: 1, source: 'edit', imageWidth: W, imageHeight: H });
    const empty = await put(img.id, { baseVersion: 1, polygons: [] });
    expect(empty.status).toBe(200);
    expect(await empty.json()).toMatchObject({ version: 2, polygons: [] });
    expect((await versionsOf(img.id))[0]).toMatchObject({ version: 2, polygonCount: 0, spheroidCount: 0 });
  });

  describe('every validation case is 400 naming the polygon, and nothing is stored', () => {
    let imageId: number;
    beforeAll(async () => {
      ({ imageId } = await segmentedImage('validation.png'));
    });
    const ext = (id: number | string, points: unknown = ngon(40, 40, 10, 8)): EditPolygon => ({
      id,
      type: 'external',
      parentId: null,
      points,
    });
    const cases: Array<[string, unknown, RegExp]> = [
      [
        'fewer than 3 points',
        {
          polygons: [
            ext(1),
            ext(5, [
              [1, 1],
              [2, 2],
            ]),
          ],
        },
        /polygons\[1\] \(id 5\).*at least 3 points/,
      ],
      [
        'a point of one number',
        { polygons: [ext(5, [[1, 1], [2], [3, 3]])] },
        /polygons\[0\] \(id 5\).*points\[1\]/,
      ],
      [
        'a point of three numbers',
        {
          polygons: [
            ext(5, [
              [1, 1],
              [2, 2, 2],
              [3, 1],
            ]),
          ],
        },
        /polygons\[0\] \(id 5\).*points\[1\]/,
      ],
      [
        'a point with a string',
        {
          polygons: [
            ext(5, [
              [1, 1],
              ['2', 2],
              [3, 1],
            ]),
          ],
        },
        /polygons\[0\].*points\[1\]/,
      ],
      ['a point that is null', { polygons: [ext(5, [[1, 1], null, [3, 1]])] }, /polygons\[0\].*points\[1\]/],
      [
        'x beyond the width',
        {
          polygons: [
            ext(5, [
              [1, 1],
              [W + 0.5, 2],
              [3, 9],
            ]),
          ],
        },
        /polygons\[0\].*points\[1\].*\[0, 160\]/,
      ],
      [
        'y beyond the height',
        {
          polygons: [
            ext(5, [
              [1, 1],
              [2, H + 1],
              [3, 9],
            ]),
          ],
        },
        /polygons\[0\].*points\[1\]/,
      ],
      [
        'a negative coordinate',
        {
          polygons: [
            ext(5, [
              [1, 1],
              [-0.1, 2],
              [3, 9],
            ]),
          ],
        },
        /polygons\[0\].*points\[1\]/,
      ],
      [
        'zero area',
        {
          polygons: [
            ext(5, [
              [1, 1],
              [2, 2],
              [3, 3],
              [4, 4],
            ]),
          ],
        },
        /polygons\[0\] \(id 5\).*zero area/,
      ],
      [
        'a hole whose parent does not exist',
        { polygons: [ext(1), { id: 2, type: 'internal', parentId: 99, points: ngon(40, 40, 3, 6) }] },
        /polygons\[1\] \(id 2\).*parentId 99/,
      ],
      [
        'a hole whose parent is a hole',
        {
          polygons: [
            ext(1),
            { id: 2, type: 'internal', parentId: 1, points: ngon(40, 40, 3, 6) },
            { id: 3, type: 'internal', parentId: 2, points: ngon(40, 40, 2, 6) },
          ],
        },
        /polygons\[2\] \(id 3\).*parentId 2/,
      ],
      [
        'a hole without a parent',
        { polygons: [{ id: 2, type: 'internal', parentId: null, points: ngon(40, 40, 3, 6) }] },
        /polygons\[0\] \(id 2\).*parentId null/,
      ],
      [
        'an external polygon with a parent',
        { polygons: [ext(1), { id: 2, type: 'external', parentId: 1, points: ngon(90, 40, 3, 6) }] },
        /polygons\[1\] \(id 2\).*external.*parentId null/,
      ],
      [
        'two polygons with one id',
        { polygons: [ext(4), ext(1), ext(4, ngon(90, 40, 5, 6))] },
        /polygons\[2\] \(id 4\).*polygons\[0\]/,
      ],
      [
        'one id as number and string',
        { polygons: [ext(4), ext('4', ngon(90, 40, 5, 6))] },
        /polygons\[1\] \(id "4"\)/,
      ],
      [
        'an unknown type',
        { polygons: [{ id: 1, type: 'hole', parentId: null, points: ngon(40, 40, 10) }] },
        /polygons\[0\] \(id 1\).*type/,
      ],
      ['a null class', { polygons: [{ ...ext(1), class: null }] }, /polygons\[0\].*class/],
      ['a null id', { polygons: [{ ...ext(1), id: null }] }, /polygons\[0\].*id/],
      ['an unknown property', { polygons: [{ ...ext(1), colour: 'red' }] }, /polygons\[0\].*colour/],
      ['points that are not an array', { polygons: [ext(1, 'x')] }, /polygons\[0\].*points/],
      ['a polygon that is not an object', { polygons: [ext(1), 5] }, /polygons\[1\]/],
      [
        'more than 10 000 polygons',
        {
          polygons: Array.from({ length: 10_001 }, (_, i) =>
            ext(i, [
              [1, 1],
              [2, 1],
              [2, 2],
            ]),
          ),
        },
        /at most 10000 polygons/,
      ],
      [
        'more than 200 000 points',
        {
          polygons: Array.from({ length: 4 }, (_, i) =>
            ext(
              i,
              Array.from({ length: 50_001 }, (_u, k) => [k % 150, (k * 7) % 110]),
            ),
          ),
        },
        /at most 200000 points/,
      ],
      ['no polygons', {}, /polygons/],
      ['polygons null', { polygons: null }, /polygons/],
      ['an unknown top-level property', { polygons: [], extra: 1 }, /extra/],
    ];
    it.each(cases)('%s', async (_name, body, message) => {
      const before = await storedRows(imageId);
      const res = await put(imageId, { baseVersion: 1, ...(body as object) });
      expect(res.status).toBe(400);
      const err = await res.json();
      expect(err).toMatchObject({ statusCode: 400, error: 'Bad Request' });
      expect([err.message].flat().join('\n')).toMatch(message);
      expect(await storedRows(imageId)).toBe(before);
    });
    it.each([
      ['no baseVersion', { polygons: [] }],
      ['a string baseVersion', { baseVersion: '1', polygons: [] }],
      ['a fractional baseVersion', { baseVersion: 1.5, polygons: [] }],
      ['a null baseVersion', { baseVersion: null, polygons: [] }],
      ['an array body', [1]],
    ])('%s', async (_name, body) => {
      const res = await put(imageId, body);
      expect(res.status).toBe(400);
      expect([(await res.json()).message].flat().join()).toMatch(/baseVersion/);
      expect(await storedRows(imageId)).toBe(1);
    });
    it('a coordinate that JSON reads as Infinity (1e999)', async () => {
      const res = await env.t.request(`/api/images/${imageId}/segmentation`, {
        method: 'PUT',
        token,
        headers: { 'content-type': 'application/json' },
        body: '{"baseVersion":1,"polygons":[{"id":1,"type":"external","parentId":null,"points":[[1,1],[1e999,2],[3,9]]}]}',
      });
      expect(res.status).toBe(400);
      expect((await res.json()).message.join()).toMatch(/polygons\[0\] \(id 1\).*points\[1\].*finite/);
    });
    it('no body, or not JSON', async () => {
      expect(
        (await env.t.request(`/api/images/${imageId}/segmentation`, { method: 'PUT', token })).status,
      ).toBe(400);
      const text = await env.t.request(`/api/images/${imageId}/segmentation`, {
        method: 'PUT',
        token,
        headers: { 'content-type': 'application/json' },
        body: '{"baseVersion":1,',
      });
      expect(text.status).toBe(400);
      expect(await storedRows(imageId)).toBe(1);
    });
  });

  it('another user’s image is 404 on every route; a malformed id is 400', async () => {
    const { imageId } = await segmentedImage();
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/api/images/${imageId}/segmentation`],
      ['GET', `/api/images/${imageId}/segmentation?version=1`],
      ['GET', `/api/images/${imageId}/segmentation/versions`],
      ['PUT', `/api/images/${imageId}/segmentation`, { baseVersion: 1, polygons: [] }],
      ['POST', `/api/images/${imageId}/segmentation/versions/1/restore`, { baseVersion: 1 }],
    ];
    for (const [method, p, json] of routes) {
      expect((await env.t.request(p, { method, json, token: other })).status).toBe(404);
      expect((await env.t.request(p.replace(String(imageId), '1e1'), { method, json, token })).status).toBe(
        400,
      );
    }
    expect(await storedRows(imageId)).toBe(1);
  });

  it('the overlay is redrawn for the new current version', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', 640, 480), 'overlay.png');
    await segmentWith(env, token, img.id, results(640, 480, [polygon(1, 'external', ngon(320, 240, 100))]));
    const png = async () => {
      const res = await req(`/api/images/${img.id}/segmentation/overlay`);
      expect(res.status).toBe(200);
      return sharp(Buffer.from(await res.arrayBuffer()))
        .removeAlpha()
        .raw()
        .toBuffer();
    };
    const px = (raw: Buffer, x: number, y: number) =>
      [...raw.subarray((y * 640 + x) * 3, (y * 640 + x) * 3 + 3)].join();
    const before = await png();
    expect(px(before, 420, 240)).toBe('0,230,118'); // the model's outline (rightmost point)
    const edit = await put(img.id, {
      baseVersion: 1,
      polygons: [{ id: 1, type: 'external', parentId: null, points: ngon(100, 100, 40) }],
    });
    expect(edit.status).toBe(200);
    const after = await png();
    expect(px(after, 420, 240)).not.toBe('0,230,118');
    expect(px(after, 140, 100)).toBe('0,230,118'); // the edited outline
    const restored = await req(`/api/images/${img.id}/segmentation/versions/1/restore`, {
      method: 'POST',
      json: { baseVersion: 2 },
    });
    expect(restored.status).toBe(200);
    expect(px(await png(), 420, 240)).toBe('0,230,118');
  });

  it('CSV export: the last column is the version exported; task_id is empty for an edit', async () => {
    const a = await segmentedImage('csv-a.png');
    const b = await segmentedImage('csv-b.png');
    expect(
      (
        await put(b.imageId, {
          baseVersion: 1,
          polygons: [{ id: 'x', type: 'external', parentId: null, points: ngon(80, 60, 30) }],
        })
      ).status,
    ).toBe(200);
    const res = await req(`/api/segmentation/export?format=csv&imageIds=${a.imageId},${b.imageId}`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const header = text.slice(0, text.indexOf('\r\n')).split(',');
    expect(header[header.length - 1]).toBe('version');
    const rows = parseCsv(text, { columns: true, record_delimiter: '\r\n' }) as Array<Record<string, string>>;
    expect(rows.map((r) => [Number(r.image_id), r.task_id, r.polygon_id, r.version])).toEqual([
      [a.imageId, a.taskId, '1', '1'],
      [a.imageId, a.taskId, '3', '1'],
      [b.imageId, '', 'x', '2'],
    ]);
    const edited = (await (await req(`/api/images/${b.imageId}/segmentation`)).json()).polygons[0].features;
    expect(Number(rows[2].area)).toBe(edited.area);
  });

  it('deleting the image deletes every version', async () => {
    const { imageId } = await segmentedImage();
    expect((await put(imageId, { baseVersion: 1, polygons: [] })).status).toBe(200);
    expect(
      (
        await req(`/api/images/${imageId}/segmentation/versions/1/restore`, {
          method: 'POST',
          json: { baseVersion: 2 },
        })
      ).status,
    ).toBe(200);
    expect(await storedRows(imageId)).toBe(3);
    expect((await req(`/api/images/${imageId}`, { method: 'DELETE' })).status).toBe(204);
    expect(await storedRows(imageId)).toBe(0);
    expect((await req(`/api/images/${imageId}/segmentation/versions`)).status).toBe(404);
    expect((await req(`/api/images/${imageId}/segmentation?version=1`)).status).toBe(404);
  });
});
