import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import type { MlPolygon } from '../../src/common/contracts';
import { ImageDecodeError, decodeToGrey } from '../../src/segmenter/pipeline/decode';
import { contourFeatures } from '../../src/segmenter/pipeline/features';
import { type Cv, loadOpenCv } from '../../src/segmenter/pipeline/opencv';
import { segmentImageFile } from '../../src/segmenter/pipeline/segment';
import { greyBmp, grey16Png, greyPng, greyTiff, rgbJpeg } from '../fixtures/image-files';
import type { QualitySummary } from '../fixtures/quality';
import { generateSynthetic } from '../fixtures/synthetic';
import { runTsInChild } from './run-ts-in-child';

const SAMPLE = path.resolve(__dirname, '../../../shared/samples/test_spheroid.png');
const SUITE_SIZE = 50;
const externals = (polygons: MlPolygon[]) => polygons.filter((p) => p.type === 'external');

let cv: Cv;
beforeAll(async () => {
  ({ cv } = await loadOpenCv());
});

describe('real sample', () => {
  it('finds exactly the two touching spheroids, not the bubble, debris or fibre', async () => {
    const results = await segmentImageFile(cv, SAMPLE, 100_000_000);
    expect(results).toMatchObject({ image_width: 1000, image_height: 1000 });
    const spheroids = externals(results.polygons);
    expect(spheroids).toHaveLength(2);
    for (const s of spheroids) {
      expect(s.class).toBe('spheroid');
      // A spheroid body: large and compact (a fibre, bubble or debris cluster is neither).
      expect(s.features.area).toBeGreaterThan(15_000);
      expect(s.features.solidity).toBeGreaterThan(0.9);
      expect(s.features.circularity).toBeGreaterThan(0.65);
    }
    // Touching: the two outlines come within a few pixels of each other.
    const [a, b] = spheroids;
    const gap = Math.min(
      ...a.points.flatMap(([ax, ay]) => b.points.map(([bx, by]) => Math.hypot(ax - bx, ay - by))),
    );
    expect(gap).toBeLessThan(10);
  });
});

describe('quality on synthetic scenes', () => {
  it(`segments ${SUITE_SIZE} seeded scenes (half with touching pairs) with per-spheroid IoU ≥ 0.90 and image IoU ≥ 0.93`, async () => {
    const summary = await runTsInChild<QualitySummary>(
      path.resolve(__dirname, '../fixtures/quality.ts'),
      'runQualitySuite',
      [SUITE_SIZE],
    );
    process.stdout.write(`segmenter quality ${JSON.stringify(summary)}\n`);
    expect(summary.scenes).toBe(SUITE_SIZE);
    expect(summary.touchingPairScenes).toBe(SUITE_SIZE / 2);
    expect(summary.meanSpheroidIoU).toBeGreaterThanOrEqual(0.9);
    expect(summary.meanImageIoU).toBeGreaterThanOrEqual(0.93);
    expect(summary.extras.filter((e) => e.covers !== 'background')).toEqual([]);
  });
});

describe('features', () => {
  const polygon = (points: [number, number][]) =>
    cv.matFromArray(points.length, 1, cv.CV_32SC2, points.flat());
  const ellipse = (a: number, b: number, degrees: number): [number, number][] =>
    Array.from({ length: 72 }, (_, k) => {
      const t = (k / 72) * 2 * Math.PI;
      const r = (degrees * Math.PI) / 180;
      const x = a * Math.cos(t);
      const y = b * Math.sin(t);
      return [
        Math.round(500 + x * Math.cos(r) - y * Math.sin(r)),
        Math.round(400 + x * Math.sin(r) + y * Math.cos(r)),
      ];
    });

  it('describes a circle', () => {
    const contour = polygon(ellipse(100, 100, 0));
    const f = contourFeatures(cv, contour);
    contour.delete();
    expect(f.area).toBeCloseTo(Math.PI * 100 ** 2, -2);
    expect(f.circularity).toBeGreaterThan(0.97);
    expect(f.solidity).toBeGreaterThan(0.99);
    expect(f.eccentricity).toBeLessThan(0.1);
    expect(f.major_axis).toBeCloseTo(200, -1);
    expect(f.minor_axis).toBeCloseTo(200, -1);
    expect(f.centroid_x).toBeCloseTo(500, 0);
    expect(f.centroid_y).toBeCloseTo(400, 0);
  });

  it('describes a rotated ellipse', () => {
    const contour = polygon(ellipse(120, 60, 30));
    const f = contourFeatures(cv, contour);
    contour.delete();
    expect(f.major_axis).toBeCloseTo(240, -1);
    expect(f.minor_axis).toBeCloseTo(120, -1);
    expect(f.eccentricity).toBeCloseTo(Math.sqrt(1 - 0.25), 2);
    expect(f.orientation).toBeCloseTo(30, 0);
  });
});

describe('decoding', () => {
  const scene = generateSynthetic(7, { spheroids: 1, touchingPair: false, size: 200 });
  const image = { width: scene.width, height: scene.height, data: scene.grey };
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'segmenter-decode-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const decodeBytes = async (name: string, bytes: Buffer, maxPixels = 1_000_000) => {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return decodeToGrey(file, maxPixels);
  };
  const meanAbsDiff = (a: Uint8Array, b: Uint8Array) =>
    a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

  it.each([
    ['8-bit grey PNG', 'a.png', () => greyPng(image), 0],
    ['16-bit grey PNG', 'b.png', () => grey16Png(image), 0.01],
    ['RGB JPEG', 'c.jpg', () => rgbJpeg(image), 3],
    ['TIFF', 'd.tif', () => greyTiff(image), 0],
    ['24-bit BMP', 'e.bmp', async () => greyBmp(image), 0.01],
  ])('reads %s to the same 8-bit grey pixels', async (_label, name, encode, tolerance) => {
    const decoded = await decodeBytes(name, await encode());
    expect({ width: decoded.width, height: decoded.height }).toEqual({ width: 200, height: 200 });
    expect(meanAbsDiff(decoded.data, image.data)).toBeLessThanOrEqual(tolerance);
  });

  it.each([
    ['8-bit grey PNG (one channel)', 'g.png', { channels: 1, colour: false }],
    ['RGB PNG with equal channels', 'h.png', { channels: 3, colour: false }],
    ['colour PNG', 'i.png', { channels: 3, colour: true }],
    ['PNG with alpha', 'j.png', { channels: 4, colour: false }],
  ] as const)('reads a %s to exactly the grey of the full sharp conversion', async (_label, name, kind) => {
    const pixels = image.width * image.height;
    const raw = Buffer.alloc(pixels * kind.channels);
    for (let i = 0; i < pixels; i++)
      for (let c = 0; c < kind.channels; c++)
        raw[i * kind.channels + c] =
          c === 3 ? (i % 3 ? 255 : 90) : kind.colour ? (image.data[i] * (c + 1)) & 255 : image.data[i];
    let encoder = sharp(raw, { raw: { width: image.width, height: image.height, channels: kind.channels } });
    if (kind.channels === 1) encoder = encoder.toColourspace('b-w');
    const png = await encoder.png().toBuffer();
    const want = await sharp(png).flatten({ background: '#ffffff' }).greyscale().raw().toBuffer();
    const decoded = await decodeBytes(name, png);
    expect(Buffer.compare(Buffer.from(decoded.data), want)).toBe(0);
  });

  it.each([
    ['PNG', 'big.png', () => greyPng(image)],
    ['BMP', 'big.bmp', async () => greyBmp(image)],
  ])('refuses a %s over the pixel limit before decoding it', async (_label, name, encode) => {
    await expect(decodeBytes(name, await encode(), 200 * 200 - 1)).rejects.toThrow(ImageDecodeError);
  });

  it('refuses a file that is not an image, and a truncated one', async () => {
    await expect(decodeBytes('text.png', Buffer.from('not an image'))).rejects.toThrow(ImageDecodeError);
    const png = await greyPng(image);
    await expect(decodeBytes('cut.png', png.subarray(0, png.length >> 1))).rejects.toThrow(ImageDecodeError);
    await expect(decodeBytes('cut.bmp', greyBmp(image).subarray(0, 100))).rejects.toThrow(ImageDecodeError);
  });
});
