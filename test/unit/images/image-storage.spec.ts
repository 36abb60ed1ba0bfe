import { HttpException } from '@nestjs/common';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ImageStorage, SMALL_UPLOAD_BYTES, STAGING_DIR, StoragePathError } from '../../../src/images/image-storage';
import { LocalObjectStore } from '../../../src/storage/local-object-store';

/** A stream of `total` bytes in 1 KiB chunks (byte i is `fill`, or i mod 251 when fill is 'counting'). */
function bytes(total: number, fill: number | 'counting' = 0x61): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(1024, total - sent);
      const chunk = Buffer.alloc(n, fill === 'counting' ? 0 : fill);
      if (fill === 'counting') for (let i = 0; i < n; i++) chunk[i] = (sent + i) % 251;
      sent += n;
      this.push(chunk);
    },
  });
}

/** `kib` chunks of 1 KiB, then destroyed (with `err`, or without an error: a premature close). */
function failingAfter(kib: number, err?: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent++ < kib) this.push(Buffer.alloc(1024));
      else this.destroy(err);
    },
  });
}

const counting = (total: number): Buffer => Buffer.from(Array.from({ length: total }, (_, i) => i % 251));

/** Every file (not directory) under `dir`, relative. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)));
}

describe('ImageStorage', () => {
  let root: string;
  let storage: ImageStorage;

  beforeEach(async () => {
    root = path.join(mkdtempSync(path.join(tmpdir(), 'storage-')), 'uploads');
    storage = new ImageStorage({ dir: root, maxBytes: 10_000, maxPixels: 1_000_000 }, new LocalObjectStore(root));
    await storage.onModuleInit();
  });
  afterEach(() => rmSync(path.dirname(root), { recursive: true, force: true }));

  it('creates UPLOAD_DIR on start', () => {
    expect(existsSync(path.join(root, STAGING_DIR))).toBe(true);
  });

  it('stages, then commits under a server-generated <yyyy>/<mm>/<uuid>.<ext>', async () => {
    const staged = await storage.stage(bytes(5000));
    expect(staged.bytes).toBe(5000);
    const stored = await storage.commit(staged, 'png', new Date(Date.UTC(2026, 2, 15)));
    expect(stored.storagePath).toMatch(/^2026\/03\/[0-9a-f-]{36}\.png$/);
        expect(readFileSync(path.join(root, stored.storagePath)).length).toBe(5000);
    expect(filesUnder(root)).toEqual([stored.storagePath]);
  });

  it('accepts exactly maxBytes', async () => {
    await expect(storage.stage(bytes(10_000))).resolves.toMatchObject({ bytes: 10_000 });
  });

  it('over the cap: throws 413 and leaves no file', async () => {
    const err = await storage.stage(bytes(50_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpException);
    expect((err as HttpException).getStatus()).toBe(413);
    expect(filesUnder(root)).toEqual([]);
  });

  it('honours a per-call cap', async () => {
    await expect(storage.save(bytes(101), 'bin', 100)).rejects.toMatchObject({ status: 413 });
    expect(filesUnder(root)).toEqual([]);
  });

  it('a failing source leaves no partial file', async () => {
    await expect(storage.stage(failingAfter(3, new Error('client went away')))).rejects.toThrow('client went away');
    expect(filesUnder(root)).toEqual([]);
  });

  it('holds an upload of up to SMALL_UPLOAD_BYTES in memory: nothing is on disk until commit writes it', async () => {
    const big = new ImageStorage({ dir: root, maxBytes: 1_000_000, maxPixels: 1_000_000 }, new LocalObjectStore(root));
    const staged = await big.stage(bytes(SMALL_UPLOAD_BYTES, 'counting'));
    expect(staged.tempPath).toBeUndefined();
    expect(staged.data?.equals(counting(SMALL_UPLOAD_BYTES))).toBe(true);
    expect(filesUnder(root)).toEqual([]);
    const stored = await big.commit(staged, 'png');
    expect(readFileSync(path.join(root, stored.storagePath)).equals(counting(SMALL_UPLOAD_BYTES))).toBe(true);
    expect(filesUnder(root)).toEqual([stored.storagePath]);
    await big.discard(staged); // nothing to delete; the stored file stays
    expect(filesUnder(root)).toEqual([stored.storagePath]);
  });

  it('streams a larger upload to the staging area, every byte in order', async () => {
    const big = new ImageStorage({ dir: root, maxBytes: 1_000_000, maxPixels: 1_000_000 }, new LocalObjectStore(root));
    for (const total of [SMALL_UPLOAD_BYTES + 1, 300_000]) {
      const staged = await big.stage(bytes(total, 'counting'));
      expect(staged.data).toBeUndefined();
      expect(path.dirname(staged.tempPath!)).toBe(path.join(root, STAGING_DIR));
      expect(staged.bytes).toBe(total);
      const stored = await big.commit(staged, 'png');
      expect(readFileSync(path.join(root, stored.storagePath)).equals(counting(total))).toBe(true);
      expect(existsSync(staged.tempPath!)).toBe(false);
    }
  });

  it('over the cap after going to disk: 413 and no file; a source failing there leaves no file', async () => {
    await expect(storage.stage(bytes(200_000), 150_000)).rejects.toMatchObject({ status: 413 });
    expect(filesUnder(root)).toEqual([]);
    const failing = failingAfter(100, new Error('client went away'));
    await expect(storage.stage(failing, 1_000_000)).rejects.toThrow('client went away');
    expect(filesUnder(root)).toEqual([]);
  });

  it('a source destroyed without an error before its end is refused, not taken as complete', async () => {
    await expect(storage.stage(failingAfter(3))).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('makes a month directory once per process, and again when it was removed meanwhile', async () => {
    // The module object itself (an `import * as` namespace is a copy under esModuleInterop).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
    const mkdir = jest.spyOn(fsp, 'mkdir');
    try {
      const march = new Date(Date.UTC(2026, 2, 15));
      const a = await storage.commit(await storage.stage(bytes(10)), 'png', march);
      await storage.commit(await storage.stage(bytes(10)), 'png', march);
      expect(mkdir).toHaveBeenCalledTimes(1);
      rmSync(path.join(root, '2026'), { recursive: true });
      const b = await storage.commit(await storage.stage(bytes(10)), 'png', march); // in memory: write
      expect(filesUnder(root)).toEqual([b.storagePath]);
      rmSync(path.join(root, '2026'), { recursive: true });
      const c = await storage.commit(await storage.stage(bytes(80_000), 100_000), 'png', march); // staged: rename
      expect(filesUnder(root)).toEqual([c.storagePath]);
      expect(mkdir).toHaveBeenCalledTimes(3);
      expect(a.storagePath).not.toBe(b.storagePath);
    } finally {
      mkdir.mockRestore();
    }
  });

  it('discard removes a staged file', async () => {
    const staged = await storage.stage(bytes(80_000), 100_000);
    expect(filesUnder(root)).toHaveLength(1);
    await storage.discard(staged);
    expect(filesUnder(root)).toEqual([]);
  });

  it('resolve refuses anything that escapes UPLOAD_DIR', () => {
    for (const bad of [
      '../x.png',
      '2026/../../x.png',
      '..',
      '',
      '/etc/passwd',
      path.join(root, 'a.png'),
      'a\0.png',
      '.',
    ]) {
      expect(() => new LocalObjectStore(root).resolve(bad)).toThrow(StoragePathError);
    }
    expect(new LocalObjectStore(root).resolve('2026/01/a.png')).toBe(path.join(root, '2026/01/a.png'));
  });

  it('a sibling directory sharing the prefix is outside too', () => {
    expect(() => new LocalObjectStore(root).resolve(`../${path.basename(root)}-evil/x.png`)).toThrow(StoragePathError);
  });

  it('remove deletes a stored file and its variants, is idempotent; refuses traversal', async () => {
    const stored = await storage.save(bytes(10), 'png');
    const variant = path.join(root, stored.storagePath.replace(/\.png$/, '.d'), 'thumb-64.webp');
    mkdirSync(path.dirname(variant));
    writeFileSync(variant, 'x');
    await storage.remove(stored.storagePath);
    expect(filesUnder(root).filter((f) => !f.startsWith(STAGING_DIR))).toEqual([]);
    await expect(storage.remove(stored.storagePath)).resolves.toBeUndefined();
    await expect(storage.remove('../../etc/passwd')).rejects.toBeInstanceOf(StoragePathError);
  });

  it('refuses an extension that is not a plain token', async () => {
    const staged = await storage.stage(bytes(10));
    await expect(storage.commit(staged, '../png')).rejects.toThrow('invalid extension');
  });
});
