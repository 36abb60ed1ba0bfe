import { HttpException } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { ImageInspector } from '../../../src/images/image-inspector';
import { checkPng, PngVerdict } from '../../../src/images/png-check';
import { chunk, makeImage, makeRawPng, pngChunks, RawPngOptions } from './image-fixtures';

/** Every call of sharp() (the real one), so a test can tell whether libvips was asked. */
const mockSharpSources: unknown[] = [];
jest.mock('sharp', () => {
  const real = jest.requireActual<typeof import('sharp')>('sharp');
  const counted = (...args: Parameters<typeof real>) => {
    mockSharpSources.push(args[0]);
    return real(...args);
  };
  return Object.assign(counted, real);
});

const LIMITS = { maxPixels: 100_000_000, maxRawBytes: 2 * 1024 * 1024 };
const check = (png: Buffer, limits = LIMITS): PngVerdict => checkPng(png, limits);

/** A copy of `png` with `edit` applied to it. */
function edited(png: Buffer, edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(png);
  edit(b);
  return b;
}

/** Replaces the data of the first chunk of `type` (its CRC recomputed, so only the data is wrong). */
function withChunkData(png: Buffer, type: string, data: Buffer): Buffer {
  const c = pngChunks(png).find((x) => x.type === type)!;
  return Buffer.concat([png.subarray(0, c.offset), chunk(type, data), png.subarray(c.offset + 12 + c.length)]);
}

const idatData = (png: Buffer): Buffer => {
  const c = pngChunks(png).find((x) => x.type === 'IDAT')!;
  return png.subarray(c.offset + 8, c.offset + 8 + c.length);
};

const base: RawPngOptions = { width: 13, height: 7, colourType: 2, bitDepth: 8 };

describe('checkPng', () => {
  it.each([
    [0, 1],
    [0, 2],
    [0, 4],
    [0, 8],
    [0, 16],
    [2, 8],
    [2, 16],
    [4, 8],
    [4, 16],
    [6, 8],
    [6, 16],
  ])('accepts colour type %i at %i bits with its width and height (and libvips decodes it)', async (colourType, bitDepth) => {
    const png = makeRawPng({ width: 13, height: 7, colourType, bitDepth });
    expect(check(png)).toEqual({ kind: 'valid', width: 13, height: 7 });
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([13, 7]);
    await sharp(png, { failOn: 'error' }).raw().toBuffer();
  });

  it('accepts what a real encoder writes (sharp: grey, RGB, RGBA, 16-bit; with pHYs)', async () => {
    const rgb = await makeImage('png', 40, 30);
    expect(pngChunks(rgb).map((c) => c.type)).toContain('pHYs');
    expect(check(rgb)).toEqual({ kind: 'valid', width: 40, height: 30 });
    const grey = await sharp(rgb).toColourspace('b-w').png().toBuffer();
    const rgba = await sharp(rgb).ensureAlpha(0.5).png().toBuffer();
    const rgb16 = await sharp(rgb).toColourspace('rgb16').png().toBuffer();
    for (const [png, colourType, depth] of [
      [grey, 0, 8],
      [rgba, 6, 8],
      [rgb16, 2, 16],
    ] as const) {
      expect([png[25], png[24]]).toEqual([colourType, depth]);
      expect(check(png)).toEqual({ kind: 'valid', width: 40, height: 30 });
    }
  });

  it('accepts pixel data split over several IDAT chunks', () => {
    const png = makeRawPng({ ...base, width: 60, height: 40, idatSize: 100 });
    expect(pngChunks(png).filter((c) => c.type === 'IDAT').length).toBeGreaterThan(3);
    expect(check(png)).toEqual({ kind: 'valid', width: 60, height: 40 });
  });

  it('rejects a bad CRC in any chunk', () => {
    const png = makeRawPng(base);
    for (const c of pngChunks(png)) {
      const bad = edited(png, (b) => (b[c.offset + 8 + c.length + 3] ^= 1));
      expect(check(bad)).toEqual({ kind: 'invalid', reason: `bad CRC in ${c.type}` });
    }
  });

  it('rejects truncated pixel data (the zlib stream cut short), the CRC being right', () => {
    const png = makeRawPng({ ...base, width: 60, height: 40 });
    const z = idatData(png);
    expect(check(withChunkData(png, 'IDAT', z.subarray(0, z.length - 20)))).toEqual({
      kind: 'invalid',
      reason: 'corrupt or truncated image data',
    });
  });

  it('rejects a zlib stream whose Adler-32 is wrong', () => {
    const png = makeRawPng(base);
    const z = Buffer.from(idatData(png));
    z[z.length - 1] ^= 1;
    expect(check(withChunkData(png, 'IDAT', z))).toMatchObject({ kind: 'invalid' });
  });

  it('rejects pixel data of the wrong size: a row fewer or a row more than IHDR says', () => {
    expect(check(makeRawPng({ ...base, rows: base.height - 1 }))).toEqual({
      kind: 'invalid',
      reason: 'less image data than the rows need',
    });
    expect(check(makeRawPng({ ...base, rows: base.height + 1 }))).toEqual({
      kind: 'invalid',
      reason: 'more image data than the rows hold',
    });
    // One byte short in the last row (sub-byte samples: the row size is rounded up to whole bytes).
    const grey1 = makeRawPng({ width: 9, height: 3, colourType: 0, bitDepth: 1 }); // rows of 1 + 2 bytes
    const raw = Buffer.alloc(3 * 3 - 1);
    expect(check(withChunkData(grey1, 'IDAT', deflateSync(raw)))).toMatchObject({ kind: 'invalid' });
    expect(check(withChunkData(grey1, 'IDAT', deflateSync(Buffer.alloc(9))))).toMatchObject({ kind: 'valid' });
  });

  it('rejects a row filter type above 4, in any row', () => {
    for (const row of [0, 3, base.height - 1]) {
      const png = makeRawPng({ ...base, filter: (y) => (y === row ? 5 : 1) });
      expect(check(png)).toEqual({ kind: 'invalid', reason: 'invalid row filter type' });
    }
    expect(check(makeRawPng({ ...base, filter: () => 4 }))).toMatchObject({ kind: 'valid' });
  });

  it('rejects a file without IEND, or cut inside a chunk', () => {
    const png = makeRawPng(base);
    const iend = pngChunks(png).find((c) => c.type === 'IEND')!;
    expect(check(png.subarray(0, iend.offset))).toEqual({ kind: 'invalid', reason: 'no IEND chunk' });
    expect(check(png.subarray(0, iend.offset + 6))).toEqual({ kind: 'invalid', reason: 'truncated chunk header' });
    expect(check(png.subarray(0, png.length - 40))).toEqual({ kind: 'invalid', reason: 'truncated chunk' });
  });

  it('rejects an IHDR that is missing, malformed or impossible', () => {
    const png = makeRawPng(base);
    const ihdr = (edit: (d: Buffer) => void) => {
      const d = Buffer.from(png.subarray(16, 29));
      edit(d);
      return check(withChunkData(png, 'IHDR', d));
    };
    expect(ihdr((d) => d.writeUInt32BE(0, 0))).toEqual({ kind: 'invalid', reason: 'invalid dimensions' });
    expect(ihdr((d) => d.writeUInt32BE(0, 4))).toEqual({ kind: 'invalid', reason: 'invalid dimensions' });
    expect(ihdr((d) => d.writeUInt32BE(2 ** 31, 0))).toEqual({ kind: 'invalid', reason: 'invalid dimensions' });
    expect(ihdr((d) => (d[8] = 4))).toEqual({ kind: 'invalid', reason: 'invalid bit depth or colour type' }); // RGB at 4 bits
    expect(ihdr((d) => (d[9] = 5))).toEqual({ kind: 'invalid', reason: 'invalid bit depth or colour type' });
    for (const at of [10, 11]) {
      expect(ihdr((d) => (d[at] = 1))).toEqual({
        kind: 'invalid',
        reason: 'invalid compression, filter or interlace method',
      });
    }
    expect(ihdr((d) => (d[12] = 2))).toMatchObject({ kind: 'invalid' });
    const noIhdr = Buffer.concat([png.subarray(0, 8), png.subarray(33)]);
    expect(check(noIhdr)).toEqual({ kind: 'invalid', reason: 'the first chunk is not a 13-byte IHDR' });
    const twice = Buffer.concat([png.subarray(0, 33), png.subarray(8)]);
    expect(check(twice)).toEqual({ kind: 'invalid', reason: 'a second IHDR' });
    const noIdat = Buffer.concat([png.subarray(0, 33), chunk('IEND', Buffer.alloc(0))]);
    expect(check(noIdat)).toEqual({ kind: 'invalid', reason: 'no IDAT chunk' });
  });

  it('leaves to libvips what it does not cover', async () => {
    const unsupported = { kind: 'unsupported' };
    const palette = await sharp(await makeImage('png', 20, 10))
      .png({ palette: true })
      .toBuffer();
    expect(palette[25]).toBe(3);
    expect(check(palette)).toEqual({ kind: 'unsupported', reason: 'palette' });
    expect(check(makeRawPng({ ...base, interlace: 1 }))).toEqual({ kind: 'unsupported', reason: 'interlaced' });
    const text = chunk('tEXt', Buffer.from('Comment\0hello', 'latin1'));
    expect(check(makeRawPng({ ...base, extra: [text] }))).toEqual({ ...unsupported, reason: 'chunk tEXt' });
    const phys = chunk('pHYs', Buffer.from([0, 0, 11, 19, 0, 0, 11, 19, 1]));
    expect(check(makeRawPng({ ...base, extra: [phys] }))).toMatchObject({ kind: 'valid' });
    expect(check(makeRawPng({ ...base, extra: [phys, phys] }))).toEqual({ ...unsupported, reason: 'chunk pHYs' });
    const badUnit = chunk('pHYs', Buffer.from([0, 0, 11, 19, 0, 0, 11, 19, 7]));
    expect(check(makeRawPng({ ...base, extra: [badUnit] }))).toEqual({ ...unsupported, reason: 'chunk pHYs' });
    // An ancillary chunk after the pixel data, and data after IEND.
    const png = makeRawPng(base);
    const iend = pngChunks(png).find((c) => c.type === 'IEND')!;
    const late = Buffer.concat([png.subarray(0, iend.offset), phys, png.subarray(iend.offset)]);
    expect(check(late)).toEqual({ ...unsupported, reason: 'chunk pHYs' });
    expect(check(Buffer.concat([png, Buffer.from('x')]))).toEqual({ ...unsupported, reason: 'data after IEND' });
    const z = Buffer.concat([idatData(png), Buffer.from([1, 2, 3])]);
    expect(check(withChunkData(png, 'IDAT', z))).toEqual({ ...unsupported, reason: 'data after the zlib stream' });
    // Limits: the caller's pixel limit decides (413), and large rows are not inflated here.
    expect(check(png, { ...LIMITS, maxPixels: 13 * 7 - 1 })).toEqual({ ...unsupported, reason: 'over the pixel limit' });
    expect(check(png, { ...LIMITS, maxPixels: 13 * 7 })).toMatchObject({ kind: 'valid' });
    expect(check(png, { ...LIMITS, maxRawBytes: 7 * (1 + 39) - 1 })).toEqual({
      ...unsupported,
      reason: 'too large to inflate here',
    });
    expect(check(png, { ...LIMITS, maxRawBytes: 7 * (1 + 39) })).toMatchObject({ kind: 'valid' });
  });

  it('agrees with libvips on 200 random PNGs (sizes, colour types, depths, filter bytes, row counts)', async () => {
    let seed = 12345; // mulberry32
    const rand = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
    };
    const types = [0, 2, 4, 6];
    let valid = 0;
    for (let i = 0; i < 200; i++) {
      const colourType = types[rand(types.length)];
      const depths = colourType === 0 ? [1, 2, 4, 8, 16] : [8, 16];
      const height = 1 + rand(20);
      const opts: RawPngOptions = {
        width: 1 + rand(40),
        height,
        colourType,
        bitDepth: depths[rand(depths.length)],
        filter: rand(4) === 0 ? () => rand(7) : () => rand(5),
        rows: rand(5) === 0 ? height + rand(3) - 1 : height,
      };
      const png = makeRawPng(opts);
      const v = check(png);
      const decodes = await sharp(png, { failOn: 'error' })
        .raw()
        .toBuffer()
        .then(
          () => true,
          () => false,
        );
      if (v.kind === 'valid') {
        valid++;
        expect({ opts, decodes }).toEqual({ opts, decodes: true });
        expect([v.width, v.height]).toEqual([opts.width, opts.height]);
      } else {
        // Not always refused by libvips (it ignores rows beyond the last): the inspector asks it then.
        expect(v.kind).toBe('invalid');
      }
    }
    expect(valid).toBeGreaterThan(50);
  });

  it('rejects what is not a PNG at all', () => {
    expect(check(Buffer.from('hello'))).toEqual({ kind: 'invalid', reason: 'no PNG signature' });
  });
});

describe('ImageInspector on a PNG held in memory', () => {
  const inspector = new ImageInspector({ dir: '/unused', maxBytes: 50 * 1024 * 1024, maxPixels: 100_000_000 });
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(path.join(tmpdir(), 'png-check-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const answer = async (source: string | Buffer): Promise<unknown> => {
    try {
      return await inspector.inspect(source);
    } catch (err) {
      expect(err).toBeInstanceOf(HttpException);
      return { status: (err as HttpException).getStatus(), message: (err as HttpException).message };
    }
  };

  it('accepts a valid PNG with its dimensions', async () => {
    await expect(inspector.inspect(makeRawPng({ ...base, colourType: 6 }))).resolves.toEqual({
      mime: 'image/png',
      ext: 'png',
      width: 13,
      height: 7,
    });
  });

  it('does not ask libvips about a valid PNG in memory; does for one on disk, a broken or a palette one', async () => {
    mockSharpSources.length = 0;
    const png = makeRawPng(base);
    await inspector.inspect(png);
    expect(mockSharpSources).toEqual([]);
    const p = path.join(dir, 'valid.png');
    writeFileSync(p, png);
    await inspector.inspect(p);
    expect(mockSharpSources).toEqual([p, p]); // header, then the decode
    mockSharpSources.length = 0;
    await answer(makeRawPng({ ...base, filter: () => 7 }));
    expect(mockSharpSources).toHaveLength(2);
    const palette = await sharp(await makeImage('png', 20, 10))
      .png({ palette: true })
      .toBuffer();
    mockSharpSources.length = 0;
    await expect(inspector.inspect(palette)).resolves.toMatchObject({ width: 20, height: 10 });
    expect(mockSharpSources).toEqual([palette, palette]);
  });

  it('answers every broken PNG as libvips does for the same file on disk (same status and message)', async () => {
    const png = makeRawPng({ ...base, width: 60, height: 40 });
    const z = idatData(png);
    const broken = [
      edited(png, (b) => (b[29] ^= 1)), // IHDR CRC
      withChunkData(png, 'IDAT', z.subarray(0, z.length - 20)),
      makeRawPng({ ...base, rows: base.height - 1 }),
      makeRawPng({ ...base, rows: base.height + 1 }),
      makeRawPng({ ...base, filter: () => 9 }),
      png.subarray(0, png.length - 12),
      png.subarray(0, png.length - 100),
    ];
    let n = 0;
    for (const b of broken) {
      expect(checkPng(b, LIMITS).kind).not.toBe('valid');
      const p = path.join(dir, `${n++}.png`);
      writeFileSync(p, b);
      expect(await answer(b)).toEqual(await answer(p));
    }
    // A truncated one is refused (400), in memory as on disk.
    expect(await answer(png.subarray(0, png.length - 100))).toMatchObject({ status: 400 });
  });

  it('applies MAX_IMAGE_PIXELS to a valid PNG in memory (413)', async () => {
    const strict = new ImageInspector({ dir: '/unused', maxBytes: 1e6, maxPixels: 13 * 7 - 1 });
    await expect(strict.inspect(makeRawPng(base))).rejects.toMatchObject({ status: 413 });
  });
});
