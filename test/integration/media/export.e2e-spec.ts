import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseDisposition } from 'content-disposition';
import { DataSource } from 'typeorm';
import type { MlPolygon } from '../../../src/common/contracts';
import { makeImage } from '../../unit/images/image-fixtures';
import { S3TestServer } from '../../support/s3-server';
import { STORAGE_DRIVERS } from '../../support/storage-drivers';
import { MediaEnv, ngon, polygon, results, segmentWith, startMediaApp, uploadBody } from './media-helpers';

const COLUMNS = [
  'image_id',
  'original_name',
  'task_id',
  'polygon_id',
  'area',
  'perimeter',
  'circularity',
  'solidity',
  'eccentricity',
  'major_axis',
  'minor_axis',
  'orientation',
  'centroid_x',
  'centroid_y',
  'confidence',
  'holes',
  'hole_area',
  'version',
];

/** Uncompressed COCO RLE (column-major, zeros first) → mask[y][x] (written here, independent of the app). */
function decodeRle(counts: number[], h: number, w: number): Uint8Array {
  const mask = new Uint8Array(h * w); // row-major y * w + x
  let pos = 0;
  counts.forEach((c, i) => {
    if (i % 2 === 1) for (let k = pos; k < pos + c; k++) mask[(k % h) * w + Math.floor(k / h)] = 1;
    pos += c;
  });
  expect(pos).toBe(h * w);
  return mask;
}

/** Even-odd point-in-polygon. */
function inside(x: number, y: number, pts: [number, number][]): boolean {
  let c = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) c = !c;
  }
  return c;
}

describe.each(STORAGE_DRIVERS)('GET /api/segmentation/export with STORAGE_DRIVER=%s (CONTRACT §3 Segmentation)', (driver) => {
  let s3: S3TestServer | undefined;
  let env: MediaEnv;
  let token: string;
  let other: string;
  const W = 160;
  const H = 120;
  const awkward = [
    'comma, in name.png',
    'quote"name.png',
    '=HYPERLINK("x").png',
    '+plus.png',
    '-minus.png',
    '@at.png',
  ];
  const images: Array<{ id: number; name: string; taskId: string; polygons: MlPolygon[] }> = [];
  let noResult: number;
  let foreign: number;

  beforeAll(async () => {
    if (driver === 's3') s3 = await new S3TestServer().start();
    env = await startMediaApp('export', {}, driver, s3);
    ({ token } = await env.t.register());
    ({ token: other } = await env.t.register());
    for (const [i, name] of awkward.entries()) {
      const img = await uploadBody(env.t, token, await makeImage('png', W, H), name);
      const polygons = [
        polygon(1, 'external', ngon(50, 50, 30, 32, i / 10)),
        polygon(2, 'internal', ngon(50, 50, 10, 16), 1),
        polygon(
          3,
          'internal',
          [
            [40, 70],
            [60, 70],
            [60, 76],
            [40, 76],
          ],
          1,
        ),
        polygon(4, 'external', ngon(120, 80, 15 + i, 20)),
      ];
      const taskId = await segmentWith(env, token, img.id, results(W, H, polygons));
      images.push({ id: img.id, name: img.originalName as string, taskId, polygons });
    }
    // A line break and quotes in a name (upload strips control characters and multipart writes `"` as
    // %22, so this one is set in the database).
    const db = env.t.app.get(DataSource);
    await db.query(`UPDATE images SET original_name = $1 WHERE id = $2`, [
      '=line\r\nbreak "quoted", too.png',
      images[1].id,
    ]);
    images[1].name = '=line\r\nbreak "quoted", too.png';
    noResult = (await uploadBody(env.t, token, await makeImage('png', 20, 20), 'none.png')).id;
    const f = await uploadBody(env.t, other, await makeImage('png', 20, 20), 'theirs.png');
    await segmentWith(env, other, f.id, results(20, 20, [polygon(1, 'external', ngon(10, 10, 5, 8))]));
    foreign = f.id;
  });
  afterAll(async () => {
    await env?.stop();
    await s3?.stop();
  });

  it('CSV: RFC 4180, one row per spheroid with the result’s values, formulas neutralised', async () => {
    const res = await env.t.request('/api/segmentation/export?format=csv', { token });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const disp = parseDisposition(res.headers.get('content-disposition')!);
    expect(disp.type).toBe('attachment');
    expect(disp.parameters.filename).toMatch(/\.csv$/);
    const text = await res.text();
    expect(text.startsWith(COLUMNS.join(',') + '\r\n')).toBe(true);
    expect(text.endsWith('\r\n')).toBe(true);
    const rows = parseCsv(text, { columns: true, record_delimiter: '\r\n' }) as Array<Record<string, string>>;
    expect(Object.keys(rows[0])).toEqual(COLUMNS);
    expect(rows).toHaveLength(images.length * 2); // holes are not rows; the image without result is skipped
    expect(rows.map((r) => Number(r.image_id))).toEqual(images.flatMap((i) => [i.id, i.id]));
    for (const [n, img] of images.entries()) {
      const expectedName = /^[=+\-@]/.test(img.name) ? `'${img.name}` : img.name;
      for (const [k, p] of [img.polygons[0], img.polygons[3]].entries()) {
        const row = rows[n * 2 + k];
        const f = p.features;
        const holes = img.polygons.filter((q) => q.parent_id === p.id);
        expect(row).toEqual({
          image_id: String(img.id),
          original_name: expectedName,
          task_id: img.taskId,
          polygon_id: String(p.id),
          area: String(f.area),
          perimeter: String(f.perimeter),
          circularity: String(f.circularity),
          solidity: String(f.solidity),
          eccentricity: String(f.eccentricity),
          major_axis: String(f.major_axis),
          minor_axis: String(f.minor_axis),
          orientation: String(f.orientation),
          centroid_x: String(f.centroid_x),
          centroid_y: String(f.centroid_y),
          confidence: String(p.confidence),
          holes: String(holes.length),
          hole_area: String(holes.reduce((s, h) => s + h.features.area, 0)),
          version: '1',
        });
      }
    }
    expect(rows.some((r) => r.original_name.startsWith("'=HYPERLINK("))).toBe(true);
    expect(rows.some((r) => r.original_name === '\'=line\r\nbreak "quoted", too.png')).toBe(true);
    expect(text).toContain('"\'=line\r\nbreak ""quoted"", too.png"'); // quoted, quotes doubled
    expect(rows.some((r) => r.original_name === 'comma, in name.png')).toBe(true);
  });

  it('imageIds selects, in id order; another user’s id → 404; bad format or ids → 400', async () => {
    const pick = [images[3].id, images[0].id, noResult];
    const res = await env.t.request(`/api/segmentation/export?format=csv&imageIds=${pick.join(',')}`, {
      token,
    });
    expect(res.status).toBe(200);
    const rows = parseCsv(await res.text(), { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => Number(r.image_id))).toEqual([
      images[0].id,
      images[0].id,
      images[3].id,
      images[3].id,
    ]);

    const bad = async (q: string, status: number) => {
      const r = await env.t.request(`/api/segmentation/export?${q}`, { token });
      expect(r.status).toBe(status);
      expect(await r.json()).toMatchObject({ statusCode: status });
    };
    await bad(`format=csv&imageIds=${images[0].id},${foreign}`, 404);
    await bad(`format=coco&imageIds=2000000000`, 404);
    await bad('format=xml', 400);
    await bad('format=csv&imageIds=1,abc', 400);
    await bad('format=csv&imageIds=0x10', 400);
    await bad(`format=csv&imageIds=${Array.from({ length: 10_001 }, (_, i) => i + 1).join(',')}`, 400);
    expect((await env.t.request('/api/segmentation/export?format=csv')).status).toBe(401);
  });

  it('COCO: images, categories, polygons for plain spheroids, RLE for ones with holes that decodes to them', async () => {
    const res = await env.t.request('/api/segmentation/export?format=coco', { token });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(parseDisposition(res.headers.get('content-disposition')!).type).toBe('attachment');
    const coco = await res.json();
    expect(coco.categories).toEqual([{ id: 1, name: 'spheroid' }]);
    expect(coco.images).toEqual(images.map((i) => ({ id: i.id, file_name: i.name, width: W, height: H })));
    expect(coco.annotations).toHaveLength(images.length * 2);
    expect(new Set(coco.annotations.map((a: { id: number }) => a.id)).size).toBe(coco.annotations.length);

    for (const img of images) {
      const anns = coco.annotations.filter((a: { image_id: number }) => a.image_id === img.id);
      expect(anns).toHaveLength(2);
      const [withHoles, plain] = anns;
      for (const a of anns) expect(a).toMatchObject({ category_id: 1, iscrowd: 0 });

      // plain spheroid: its polygon, area close to the polygon's
      const pts = img.polygons[3].points;
      expect(plain.segmentation).toEqual([pts.flat()]);
      expect(
        Math.abs(plain.area - img.polygons[3].features.area) / img.polygons[3].features.area,
      ).toBeLessThan(0.1);
      const xs = pts.map((p) => p[0]);
      const ys = pts.map((p) => p[1]);
      expect(plain.bbox).toEqual([
        Math.min(...xs),
        Math.min(...ys),
        Math.max(...xs) - Math.min(...xs),
        Math.max(...ys) - Math.min(...ys),
      ]);

      // with holes: uncompressed RLE over the whole image, decoded and compared with the polygons
      expect(withHoles.segmentation.size).toEqual([H, W]);
      const mask = decodeRle(withHoles.segmentation.counts, H, W);
      expect(mask.reduce((s, v) => s + v, 0)).toBe(withHoles.area);
      const [outer, hole1, hole2] = img.polygons.map((p) => p.points);
      let agree = 0;
      let total = 0;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const want = inside(x, y, outer) && !inside(x, y, hole1) && !inside(x, y, hole2) ? 1 : 0;
          total++;
          if (mask[y * W + x] === want) agree++;
        }
      }
      expect(agree / total).toBeGreaterThan(0.99);
      expect(mask[50 * W + 50]).toBe(0); // hole centre
      expect(mask[73 * W + 50]).toBe(0); // second hole
      expect(mask[50 * W + 70]).toBe(1); // ring
      expect(mask[5 * W + 5]).toBe(0); // background
      expect(mask[80 * W + 120]).toBe(0); // the other spheroid is its own annotation
      const expectedArea =
        img.polygons[0].features.area - img.polygons[1].features.area - img.polygons[2].features.area;
      expect(Math.abs(withHoles.area - expectedArea) / expectedArea).toBeLessThan(0.1);
    }
  });
});
