import { HttpException } from '@nestjs/common';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ImageStorage, STAGING_DIR, StoragePathError } from '../../../src/images/image-storage';

/** A stream of `total` bytes in 1 KiB chunks. */
function bytes(total: number, fill = 0x61): Readable {
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const n = Math.min(1024, left);
      left -= n;
      this.push(Buffer.alloc(n, fill));
    },
  });
}

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
    storage = new ImageStorage({ dir: root, maxBytes: 10_000, maxPixels: 1_000_000 });
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
    expect(stored.absPath).toBe(path.join(root, stored.storagePath));
    expect(readFileSync(stored.absPath).length).toBe(5000);
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
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent++ < 3) this.push(Buffer.alloc(1024));
        else this.destroy(new Error('client went away'));
      },
    });
    await expect(storage.stage(failing)).rejects.toThrow('client went away');
    expect(filesUnder(root)).toEqual([]);
  });

  it('discard removes a staged file', async () => {
    const staged = await storage.stage(bytes(10));
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
      expect(() => storage.resolve(bad)).toThrow(StoragePathError);
    }
    expect(storage.resolve('2026/01/a.png')).toBe(path.join(root, '2026/01/a.png'));
  });

  it('a sibling directory sharing the prefix is outside too', () => {
    expect(() => storage.resolve(`../${path.basename(root)}-evil/x.png`)).toThrow(StoragePathError);
  });

  it('remove deletes a stored file and is idempotent; refuses traversal', async () => {
    const stored = await storage.save(bytes(10), 'png');
    await expect(storage.remove(stored.storagePath)).resolves.toBe(true);
    await expect(storage.remove(stored.storagePath)).resolves.toBe(false);
    await expect(storage.remove('../../etc/passwd')).rejects.toBeInstanceOf(StoragePathError);
  });

  it('refuses an extension that is not a plain token', async () => {
    const staged = await storage.stage(bytes(10));
    await expect(storage.commit(staged, '../png')).rejects.toThrow('invalid extension');
  });
});
