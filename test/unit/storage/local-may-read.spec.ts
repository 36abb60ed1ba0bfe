import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalObjectStore } from '../../../src/storage/local-object-store';

/** What the worker asks before it sends the ML service an image path (task-runner's file check). */
describe('LocalObjectStore.mayRead', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'may-read-'));
  const outside = mkdtempSync(path.join(os.tmpdir(), 'may-read-out-'));
  const store = new LocalObjectStore(root);
  beforeAll(() => {
    mkdirSync(path.join(root, '7'), { recursive: true });
    writeFileSync(path.join(root, '7', 'a.png'), 'x');
    writeFileSync(path.join(outside, 'b.png'), 'x');
  });
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('is true for a file stored under UPLOAD_DIR', async () => {
    expect(await store.mayRead('7/a.png')).toBe(true);
  });

  it('is false for a missing file, and for keys that leave UPLOAD_DIR', async () => {
    expect(await store.mayRead('7/missing.png')).toBe(false);
    expect(await store.mayRead(`../${path.basename(outside)}/b.png`)).toBe(false);
    expect(await store.mayRead(path.join(outside, 'b.png'))).toBe(false);
    expect(await store.mayRead('')).toBe(false);
  });

  it('is false for a dangling link', async () => {
    symlinkSync(path.join(root, 'nowhere.png'), path.join(root, '7', 'dangling.png'));
    expect(await store.mayRead('7/dangling.png')).toBe(false);
  });
});
