import { HttpException } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ImageInspector, parseBmpHeader } from '../../../src/images/image-inspector';
import { executableHead, makeBmp, makeImage, makePngBomb, makeTruncatedPng } from './image-fixtures';

const cfg = (maxPixels = 100_000_000) => ({ dir: '/unused', maxBytes: 50 * 1024 * 1024, maxPixels });

describe('ImageInspector', () => {
  let dir: string;
  let n = 0;
  const file = (data: Buffer, name = 'upload.png') => {
    const p = path.join(dir, `${n++}-${name}`);
    writeFileSync(p, data);
    return p;
  };
  const inspector = new ImageInspector(cfg());

  /** The HTTP status and message of what `inspect` throws. */
  async function refusal(p: string, i = inspector): Promise<{ status: number; message: string }> {
    try {
      await i.inspect(p);
    } catch (err) {
      expect(err).toBeInstanceOf(HttpException);
      return { status: (err as HttpException).getStatus(), message: (err as HttpException).message };
    }
    throw new Error('inspect accepted the file');
  }

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'inspector-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['png', 'image/png', 'png'],
    ['jpeg', 'image/jpeg', 'jpg'],
    ['tiff', 'image/tiff', 'tif'],
  ] as const)('accepts a real %s with its dimensions', async (format, mime, ext) => {
    const p = file(await makeImage(format, 40, 30), 'whatever.bin');
    await expect(inspector.inspect(p)).resolves.toEqual({ mime, ext, width: 40, height: 30 });
  });

  it('accepts a hand-written 24-bit BMP', async () => {
    await expect(inspector.inspect(file(makeBmp(7, 5), 'x.bmp'))).resolves.toEqual({
      mime: 'image/bmp',
      ext: 'bmp',
      width: 7,
      height: 5,
    });
  });

  it('decides by content, not by name: a PNG named .jpg is a PNG', async () => {
    const info = await inspector.inspect(file(await makeImage('png'), 'photo.jpg'));
    expect(info.mime).toBe('image/png');
  });

  it('refuses an executable named .png with 415', async () => {
    const r = await refusal(file(executableHead(), 'innocent.png'));
    expect(r.status).toBe(415);
    expect(r.message).toMatch(/PNG, JPEG, TIFF and BMP/);
  });

  it('refuses text named .png, an empty file and a GIF with 415', async () => {
    expect((await refusal(file(Buffer.from('hello, I am not an image\n'.repeat(20)), 'a.png'))).status).toBe(
      415,
    );
    expect((await refusal(file(Buffer.alloc(0), 'empty.png'))).status).toBe(415);
    const gif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///ywAAAAAAQABAAACAUwAOw==', 'base64');
    expect((await refusal(file(gif, 'a.png'))).status).toBe(415);
  });

  it('refuses a truncated PNG with 400', async () => {
    const r = await refusal(file(await makeTruncatedPng()));
    expect(r.status).toBe(400);
    expect(r.message).toMatch(/not a decodable PNG/);
  });

  it('refuses a truncated JPEG with 400', async () => {
    const jpg = await makeImage('jpeg', 120, 90);
    expect((await refusal(file(jpg.subarray(0, Math.floor(jpg.length / 2)), 'a.jpg'))).status).toBe(400);
  });

  it('refuses a truncated BMP with 400', async () => {
    const bmp = makeBmp(50, 40);
    const r = await refusal(file(bmp.subarray(0, bmp.length - 100), 'a.bmp'));
    expect(r.status).toBe(400);
    expect(r.message).toMatch(/BMP.*truncated/);
  });

  it('refuses a 20000×20000 PNG bomb with 413 from its header, fast, without decoding', async () => {
    const bomb = makePngBomb(20000, 20000); // 1.2 GB of pixels in ~1.2 MB
    expect(bomb.length).toBeLessThan(2 * 1024 * 1024);
    const p = file(bomb, 'bomb.png');
    const started = process.hrtime.bigint();
    const r = await refusal(p);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(r.status).toBe(413);
    expect(r.message).toMatch(/20000x20000.*limit of 100000000 pixels/);
    // A decode of this file takes ~10 s and 1.2 GB; the header check needs milliseconds.
    expect(ms).toBeLessThan(2000);
  });

  it('applies MAX_IMAGE_PIXELS to every format', async () => {
    const strict = new ImageInspector(cfg(1000));
    expect((await refusal(file(await makeImage('jpeg', 40, 30), 'a.jpg'), strict)).status).toBe(413);
    expect((await refusal(file(makeBmp(40, 30), 'a.bmp'), strict)).status).toBe(413);
    await expect(strict.inspect(file(makeBmp(40, 25), 'b.bmp'))).resolves.toMatchObject({
      width: 40,
      height: 25,
    });
  });

  it('never puts the server path in a message', async () => {
    const p = file(await makeTruncatedPng(), 'secret-name.png');
    const r = await refusal(p);
    expect(r.message).not.toContain(dir);
    expect(r.message).not.toContain('secret-name');
  });
});

describe('parseBmpHeader', () => {
  it('reads a top-down bitmap (negative height)', () => {
    const bmp = makeBmp(4, 3);
    bmp.writeInt32LE(-3, 22);
    expect(parseBmpHeader(bmp, bmp.length)).toMatchObject({ width: 4, height: 3, bitsPerPixel: 24 });
  });

  it('rejects impossible headers', () => {
    const base = makeBmp(4, 3);
    const edit = (f: (b: Buffer) => void) => {
      const b = Buffer.from(base);
      f(b);
      return parseBmpHeader(b, b.length);
    };
    expect(edit((b) => b.writeInt32LE(0, 18))).toBe('invalid dimensions');
    expect(edit((b) => b.writeUInt16LE(2, 26))).toBe('invalid plane count');
    expect(edit((b) => b.writeUInt16LE(7, 28))).toBe('unsupported bit depth 7');
    expect(edit((b) => b.writeUInt32LE(4, 30))).toBe('unsupported compression 4');
    expect(edit((b) => b.writeUInt32LE(99, 14))).toBe('unknown header size 99');
    expect(edit((b) => b.writeUInt32LE(10_000, 10))).toBe('pixel data offset outside the file');
    expect(edit((b) => b.writeInt32LE(1000, 22))).toBe('pixel data is truncated');
  });
});
