import { parse as parseDisposition } from 'content-disposition';
import sharp from 'sharp';
import { DataSource } from 'typeorm';
import { LinkSigner } from '../../../src/media/links/link-signer';
import { makeBmp, makeImage } from '../../unit/images/image-fixtures';
import { S3TestServer } from '../../support/s3-server';
import { STORAGE_DRIVERS } from '../../support/storage-drivers';
import { MediaEnv, ngon, polygon, results, segmentWith, startMediaApp, uploadBody } from './media-helpers';

const LINK_RE = (id: number, route: string) =>
  new RegExp(`^/api/images/${id}/${route}\\?exp=(\\d+)&sig=[A-Za-z0-9_-]{43}$`);

describe.each(STORAGE_DRIVERS)('image variants with STORAGE_DRIVER=%s: file, thumbnail, overlay, signed links (CONTRACT §3 Images, §9)', (driver) => {
  let s3: S3TestServer | undefined;
  let env: MediaEnv;
  let token: string;
  let other: string;
  const get = (p: string, init: RequestInit & { token?: string } = {}) => env.t.request(p, init);

  const files = () => env.storage.files();

  beforeAll(async () => {
    if (driver === 's3') s3 = await new S3TestServer().start();
    env = await startMediaApp('media', {}, driver, s3);
    ({ token } = await env.t.register());
    ({ token: other } = await env.t.register());
  });
  afterAll(async () => {
    await env?.stop();
    await s3?.stop();
  });

  describe('image.urls', () => {
    it('has signed file and thumbnail links, overlay null until a result exists, in upload, get and list', async () => {
      const before = Math.floor(Date.now() / 1000);
      const img = await uploadBody(env.t, token, await makeImage('png', 64, 48), 'u.png');
      const m = LINK_RE(img.id, 'file').exec(img.urls.file);
      expect(m).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(before + 3600);
      expect(Number(m![1])).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 3600);
      expect(img.urls.thumbnail).toMatch(LINK_RE(img.id, 'thumbnail'));
      expect(img.urls.overlay).toBeNull();

      await segmentWith(env, token, img.id, results(64, 48, [polygon(1, 'external', ngon(32, 24, 10))]));
      const got = await (await get(`/api/images/${img.id}`, { token })).json();
      expect(got.urls.overlay).toMatch(LINK_RE(img.id, 'segmentation/overlay'));
      const list = await (await get('/api/images?limit=100', { token })).json();
      const item = list.items.find((i: { id: number }) => i.id === img.id);
      expect(item.urls.overlay).toMatch(LINK_RE(img.id, 'segmentation/overlay'));
      expect(item.urls.file).toMatch(LINK_RE(img.id, 'file'));
      // each of the three links works with no Authorization header
      for (const link of [got.urls.file, got.urls.thumbnail, got.urls.overlay]) expect((await get(link)).status).toBe(200);
    });

    it('honours FILE_URL_TTL_SECONDS', async () => {
      const short = await startMediaApp('media-ttl', { FILE_URL_TTL_SECONDS: '120' }, driver, s3);
      try {
        const { token: tk } = await short.t.register();
        const img = await uploadBody(short.t, tk, await makeImage('png', 20, 20), 'ttl.png');
        const exp = Number(LINK_RE(img.id, 'file').exec(img.urls.file)![1]);
        expect(exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(110);
        expect(exp - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(120);
      } finally {
        await short.stop();
      }
    });
  });

  describe('GET /api/images/:id/file', () => {
    it.each([
      ['PNG', () => makeImage('png', 64, 48), 'a.png', 'image/png'],
      ['JPEG', () => makeImage('jpeg', 50, 40), 'b.jpg', 'image/jpeg'],
      ['TIFF', () => makeImage('tiff', 33, 21), 'c.tif', 'image/tiff'],
      ['BMP', async () => makeBmp(9, 6), 'd.bmp', 'image/bmp'],
    ])('returns the %s bytes as stored, by signed link and by Bearer', async (_f, make, name, mime) => {
      const data = await make();
      const img = await uploadBody(env.t, token, data, name);
      for (const res of [await get(img.urls.file), await get(`/api/images/${img.id}/file`, { token })]) {
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe(mime);
        expect(res.headers.get('content-length')).toBe(String(data.length));
        expect(res.headers.get('cache-control')).toBe('private');
        expect(res.headers.get('etag')).toBeTruthy();
        expect(parseDisposition(res.headers.get('content-disposition')!)).toEqual({
          type: 'inline',
          parameters: { filename: name },
        });
        expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
      }
    });

    it('encodes the original name per RFC 6266: quotes, semicolons and non-ASCII cannot inject anything', async () => {
      const name = 'naïve "x"; filename=evil.exe ü.png';
      const img = await uploadBody(env.t, token, await makeImage('png', 8, 8), name);
      // FormData writes `"` in a file name as %22 (HTML's multipart rule); the rest arrives as sent.
      expect(img.originalName).toBe('naïve %22x%22; filename=evil.exe ü.png');
      const res = await get(img.urls.file);
      const header = res.headers.get('content-disposition')!;
      expect(header).toMatch(/^inline; filename="[^"\\]*(\\"[^"\\]*)*"; filename\*=UTF-8''[A-Za-z0-9%._~!*'()-]+$/);
      // The parser decodes filename* (RFC 6266 §4.3: it wins over the ASCII fallback) into `filename`.
      const { type, parameters } = parseDisposition(header);
      expect({ type, filename: parameters.filename }).toEqual({ type: 'inline', filename: img.originalName });
      expect(res.headers.get('content-type')).toBe('image/png');
    });

    it('Range → 206 with the bytes; unsatisfiable → 416; If-None-Match → 304', async () => {
      const data = await makeImage('png', 80, 60);
      const img = await uploadBody(env.t, token, data, 'range.png');
      const part = await get(img.urls.file, { headers: { range: 'bytes=10-29' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 10-29/${data.length}`);
      expect(part.headers.get('content-length')).toBe('20');
      expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(10, 30))).toBe(true);

      const tail = await get(img.urls.file, { headers: { range: 'bytes=-5' } });
      expect(tail.status).toBe(206);
      expect(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(data.length - 5))).toBe(true);

      const bad = await get(img.urls.file, { headers: { range: `bytes=${data.length}-` } });
      expect(bad.status).toBe(416);
      expect(bad.headers.get('content-range')).toBe(`bytes */${data.length}`);
      expect(await bad.json()).toEqual({ statusCode: 416, error: 'Range Not Satisfiable', message: expect.any(String) });

      const etag = (await get(img.urls.file)).headers.get('etag')!;
      const same = await get(img.urls.file, { headers: { 'if-none-match': etag } });
      expect(same.status).toBe(304);
      expect(same.headers.get('etag')).toBe(etag);
      expect((await same.arrayBuffer()).byteLength).toBe(0);
      const stale = await get(img.urls.file, { headers: { 'if-none-match': '"something-else"' } });
      expect(stale.status).toBe(200);
    });
  });

  describe('signed links refused', () => {
    let a: { id: number; urls: { file: string; thumbnail: string } };
    let b: { id: number; urls: { file: string; thumbnail: string } };
    let foreign: { id: number; urls: { file: string; thumbnail: string } };
    const refusal = { statusCode: 401, error: 'Unauthorized', message: expect.any(String) };
    const parts = (link: string) => {
      const u = new URL(link, 'http://x');
      return { exp: u.searchParams.get('exp')!, sig: u.searchParams.get('sig')! };
    };
    /** The signature with its first character changed (to one it is not: a fixed letter is the first one 1 time in 64). */
    const tampered = (sig: string) => (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);

    beforeAll(async () => {
      a = await uploadBody(env.t, token, await makeImage('png', 30, 20), 'a.png');
      b = await uploadBody(env.t, token, await makeImage('png', 30, 20), 'b.png');
      foreign = await uploadBody(env.t, other, await makeImage('png', 30, 20), 'theirs.png');
    });

    it('a tampered signature or expiry → 401', async () => {
      const { exp, sig } = parts(a.urls.file);
      for (const q of [`exp=${exp}&sig=${tampered(sig)}`, `exp=${Number(exp) + 1}&sig=${sig}`, `exp=${exp}`, `sig=${sig}`, '']) {
        const res = await get(`/api/images/${a.id}/file?${q}`);
        expect(res.status).toBe(401);
        expect(await res.json()).toEqual(refusal);
      }
    });

    it('an expired link → 401', async () => {
      const signer = env.t.app.get(LinkSigner);
      const exp = Math.floor(Date.now() / 1000) - 1;
      const res = await get(`/api/images/${a.id}/file?exp=${exp}&sig=${signer.sign(a.id, 'file', exp)}`);
      expect(res.status).toBe(401);
      // the same signer's fresh link works: only the expiry made the difference
      const ok = Math.floor(Date.now() / 1000) + 60;
      expect((await get(`/api/images/${a.id}/file?exp=${ok}&sig=${signer.sign(a.id, 'file', ok)}`)).status).toBe(200);
    });

    it("another image's link, or another variant's → 401", async () => {
      const { exp, sig } = parts(a.urls.file);
      expect((await get(`/api/images/${b.id}/file?exp=${exp}&sig=${sig}`)).status).toBe(401);
      expect((await get(`/api/images/${a.id}/thumbnail?exp=${exp}&sig=${sig}`)).status).toBe(401);
      expect((await get(`/api/images/${a.id}/segmentation/overlay?exp=${exp}&sig=${sig}`)).status).toBe(401);
      const th = parts(a.urls.thumbnail);
      expect((await get(`/api/images/${a.id}/file?exp=${th.exp}&sig=${th.sig}`)).status).toBe(401);
    });

    it('reveals nothing: the same 401 for an own, a foreign and a missing image', async () => {
      const { exp, sig } = parts(a.urls.file);
      const bodies: unknown[] = [];
      for (const id of [a.id, foreign.id, 2_000_000_000]) {
        const res = await get(`/api/images/${id}/file?exp=${exp}&sig=${tampered(sig)}`);
        expect(res.status).toBe(401);
        bodies.push(await res.json());
      }
      expect(bodies[1]).toEqual(bodies[0]);
      expect(bodies[2]).toEqual(bodies[0]);
    });

    it("with a valid Bearer the Bearer decides: another user's image → 404, even with its valid link", async () => {
      const { exp, sig } = parts(foreign.urls.file);
      expect((await get(foreign.urls.file)).status).toBe(200); // the link alone works
      for (const route of ['file', 'thumbnail', 'segmentation/overlay']) {
        const res = await get(`/api/images/${foreign.id}/${route}`, { token });
        expect(res.status).toBe(404);
        expect(await res.json()).toMatchObject({ statusCode: 404, error: 'Not Found' });
      }
      expect((await get(`/api/images/${foreign.id}/file?exp=${exp}&sig=${sig}`, { token })).status).toBe(404);
      expect((await get(`/api/images/${foreign.id}/file`, { token: other })).status).toBe(200);
    });

    it('malformed ids → 400, never another image', async () => {
      for (const id of ['0x10', '1e1', '-1', '99999999999999999999']) {
        expect((await get(`/api/images/${id}/file`, { token })).status).toBe(400);
      }
    });
  });

  describe('GET /api/images/:id/thumbnail', () => {
    const meta = async (res: Response) => sharp(Buffer.from(await res.arrayBuffer())).metadata();

    it('is WebP with the longest side = size (default 256), aspect kept, never larger than the image', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', 640, 480), 'big.png');
      const def = await get(img.urls.thumbnail);
      expect(def.status).toBe(200);
      expect(def.headers.get('content-type')).toBe('image/webp');
      expect(def.headers.get('cache-control')).toBe('private');
      expect(await meta(def)).toMatchObject({ format: 'webp', width: 256, height: 192 });
      expect(await meta(await get(`${img.urls.thumbnail}&size=100`))).toMatchObject({ width: 100, height: 75 });
      expect(await meta(await get(`${img.urls.thumbnail}&size=1024`))).toMatchObject({ width: 640, height: 480 });

      const tall = await uploadBody(env.t, token, await makeImage('png', 30, 90), 'tall.png');
      expect(await meta(await get(`${tall.urls.thumbnail}&size=64`))).toMatchObject({ width: 21, height: 64 });
      expect(await meta(await get(tall.urls.thumbnail))).toMatchObject({ width: 30, height: 90 });
    });

    it('size outside 64..1024 or not an integer → 400', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', 100, 100), 's.png');
      for (const size of ['63', '1025', 'abc', '100.5', '']) {
        const res = await get(`${img.urls.thumbnail}&size=${size}`);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ statusCode: 400, error: 'Bad Request' });
      }
    });

    it.each([
      ['TIFF', () => makeImage('tiff', 300, 200), 256, 171],
      ['BMP', async () => makeBmp(120, 80), 120, 80],
      ['JPEG', () => makeImage('jpeg', 200, 400), 128, 256],
    ])('is made for %s too', async (_f, make, w, h) => {
      const img = await uploadBody(env.t, token, await make(), 'x');
      const res = await get(img.urls.thumbnail);
      expect(res.status).toBe(200);
      expect(await meta(res)).toMatchObject({ format: 'webp', width: w, height: h });
    });

    it('is made once, then served from storage (the original is not decoded again); ETag and 304', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', 200, 100), 'once.png');
      const first = await get(`${img.urls.thumbnail}&size=80`);
      const bytes = Buffer.from(await first.arrayBuffer());
      const etag = first.headers.get('etag')!;
      const db = env.t.app.get(DataSource);
      const [{ storage_path }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
      const stem = storage_path.replace(/\.[a-z]+$/, '');
      expect((await files()).filter((f) => f.startsWith(`${stem}.d/`))).toEqual([`${stem}.d/thumb-80.webp`]);
      // Break the original: a cached thumbnail does not need it; a new size does.
      await env.storage.write(storage_path, Buffer.from('not an image any more'));
      const again = await get(`${img.urls.thumbnail}&size=80`);
      expect(again.status).toBe(200);
      expect(again.headers.get('etag')).toBe(etag);
      expect(Buffer.from(await again.arrayBuffer()).equals(bytes)).toBe(true);
      expect((await get(`${img.urls.thumbnail}&size=80`, { headers: { 'if-none-match': etag } })).status).toBe(304);
      expect((await get(`${img.urls.thumbnail}&size=90`)).status).toBe(500);
    });

    it('two concurrent first requests both get the whole thumbnail', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', 900, 700), 'race.png');
      const [r1, r2] = await Promise.all([get(`${img.urls.thumbnail}&size=512`), get(`${img.urls.thumbnail}&size=512`)]);
      const [b1, b2] = [Buffer.from(await r1.arrayBuffer()), Buffer.from(await r2.arrayBuffer())];
      expect(b1.equals(b2)).toBe(true);
      expect(await sharp(b1).metadata()).toMatchObject({ width: 512, height: 398 });
      expect((await files()).some((f) => f.includes('.tmp-') || f.startsWith('UPLOAD_DIR/'))).toBe(false);
    });
  });

  describe('GET /api/images/:id/segmentation/overlay', () => {
    const W = 120;
    const H = 90;
    const outer = ngon(60, 45, 30, 24);
    const hole = ngon(60, 45, 10, 12);
    const second = ngon(20, 20, 8, 10);

    /** Distance from a point to the closest edge of any of the polygons. */
    const distToEdges = (x: number, y: number, polys: [number, number][][]) => {
      let best = Infinity;
      for (const pts of polys) {
        for (let i = 0; i < pts.length; i++) {
          const [x1, y1] = pts[i];
          const [x2, y2] = pts[(i + 1) % pts.length];
          const dx = x2 - x1;
          const dy = y2 - y1;
          const t = Math.max(0, Math.min(1, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)));
          best = Math.min(best, Math.hypot(x - (x1 + t * dx), y - (y1 + t * dy)));
        }
      }
      return best;
    };
    const rgb = async (buf: Buffer) =>
      sharp(buf).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });

    it('404 while the image has no result', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', W, H), 'nores.png');
      const res = await get(`/api/images/${img.id}/segmentation/overlay`, { token });
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ statusCode: 404, error: 'Not Found' });
    });

    it('outlines spheroids and holes in two colours, ≥ 2 px wide, where the polygons are and nowhere else', async () => {
      const original = await makeImage('png', W, H);
      const img = await uploadBody(env.t, token, original, 'ov.png');
      await segmentWith(env, token, img.id, results(W, H, [
        polygon(1, 'external', outer),
        polygon(2, 'internal', hole, 1),
        polygon(3, 'external', second),
      ]));
      const link = (await (await get(`/api/images/${img.id}`, { token })).json()).urls.overlay;
      const res = await get(link);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      const png = Buffer.from(await res.arrayBuffer());
      const out = await rgb(png);
      const base = await rgb(original);
      expect(out.info).toMatchObject({ width: W, height: H });
      const all = [outer, hole, second];
      let changedNear = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = (y * W + x) * 3;
          const changed = [0, 1, 2].some((c) => out.data[i + c] !== base.data[i + c]);
          const d = distToEdges(x + 0.5, y + 0.5, all);
          if (changed) expect(d).toBeLessThanOrEqual(2.5); // changed pixels are on an outline
          if (d <= 0.5) {
            expect(changed).toBe(true); // every pixel an outline passes through is drawn
            changedNear++;
          }
        }
      }
      expect(changedNear).toBeGreaterThan(100);
      // lines at least 2 px wide: across the outer outline at its rightmost point (x = 90, y = 45)
      const colourAt = (x: number, y: number) => [...out.data.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];
      const greenRun = [88, 89, 90, 91, 92].filter((x) => colourAt(x, 45).join() === '0,230,118').length;
      expect(greenRun).toBeGreaterThanOrEqual(2);
      // the hole's outline (rightmost point x = 70) is red
      const redRun = [68, 69, 70, 71, 72].filter((x) => colourAt(x, 45).join() === '255,23,68').length;
      expect(redRun).toBeGreaterThanOrEqual(2);
    });

    it('scales with size, and is regenerated when the current result changes', async () => {
      const img = await uploadBody(env.t, token, await makeImage('png', 640, 480), 'regen.png');
      await segmentWith(env, token, img.id, results(640, 480, [polygon(1, 'external', ngon(320, 240, 100))]));
      const small = await get(`/api/images/${img.id}/segmentation/overlay?size=128`, { token });
      expect(await sharp(Buffer.from(await small.arrayBuffer())).metadata()).toMatchObject({ width: 128, height: 96, format: 'png' });
      const first = await get(`/api/images/${img.id}/segmentation/overlay`, { token });
      const firstBytes = Buffer.from(await first.arrayBuffer());
      expect(await sharp(firstBytes).metadata()).toMatchObject({ width: 640, height: 480 });
      const etag = first.headers.get('etag')!;
      expect((await get(`/api/images/${img.id}/segmentation/overlay`, { token, headers: { 'if-none-match': etag } })).status).toBe(304);

      await segmentWith(env, token, img.id, results(640, 480, [polygon(1, 'external', ngon(100, 100, 40))]));
      const second = await get(`/api/images/${img.id}/segmentation/overlay`, { token, headers: { 'if-none-match': etag } });
      expect(second.status).toBe(200);
      const secondBytes = Buffer.from(await second.arrayBuffer());
      expect(secondBytes.equals(firstBytes)).toBe(false);
      const px = async (buf: Buffer, x: number, y: number) => {
        const { data } = await rgb(buf);
        return [...data.subarray((y * 640 + x) * 3, (y * 640 + x) * 3 + 3)].join();
      };
      expect(await px(firstBytes, 420, 240)).toBe('0,230,118'); // old outline (rightmost point)
      expect(await px(secondBytes, 420, 240)).not.toBe('0,230,118');
      expect(await px(secondBytes, 140, 100)).toBe('0,230,118'); // new outline
      // only the current result's overlays stay in storage
      const db = env.t.app.get(DataSource);
      const [{ storage_path }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
      const [{ id: resultId }] = await db.query(
        'SELECT id FROM segmentation_results WHERE image_id = $1 AND is_current',
        [img.id],
      );
      const dir = `${storage_path.replace(/\.[a-z]+$/, '')}.d/`;
      const overlays = (await files()).filter((f) => f.startsWith(`${dir}overlay-`));
      expect(overlays).toEqual([`${dir}overlay-r${resultId}-640.png`]);
    });
  });

  it('deleting an image removes the file and every variant: 404, and nothing left in storage', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', 300, 200), 'gone.png');
    await segmentWith(env, token, img.id, results(300, 200, [polygon(1, 'external', ngon(150, 100, 50))]));
    const { urls } = await (await get(`/api/images/${img.id}`, { token })).json();
    for (const link of [urls.file, urls.thumbnail, `${urls.thumbnail}&size=64`, urls.overlay, `${urls.overlay}&size=100`]) {
      expect((await get(link)).status).toBe(200);
    }
    const db = env.t.app.get(DataSource);
    const [{ storage_path }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
    const stem = storage_path.replace(/\.[a-z]+$/, '');
    const mine = async () => (await files()).filter((f) => f.startsWith(stem));
    expect((await mine()).length).toBe(5); // original, 2 thumbnails, 2 overlays
    expect((await get(`/api/images/${img.id}`, { method: 'DELETE', token })).status).toBe(204);
    expect(await mine()).toEqual([]);
    for (const link of [urls.file, urls.thumbnail, urls.overlay]) expect((await get(link)).status).toBe(404);
  });
});

