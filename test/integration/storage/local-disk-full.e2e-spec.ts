import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { noisePng, uploadFile } from '../../support/big-upload';
import { makeImage } from '../../unit/images/image-fixtures';
import { MediaEnv, startMediaApp } from '../media/media-helpers';

const noSpace = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });

/**
 * CONTRACT §9 with STORAGE_DRIVER=local: a disk that fills up answers 507 with the error body, leaves
 * no image row and no file (not even a partial one), and the next upload works once there is room. A
 * full disk cannot be made here without privileges, so the file system's answer is injected at the
 * call the driver makes (the write of a small file, the rename of a staged one), after a partial write.
 */
describe('STORAGE_DRIVER=local when the disk is full', () => {
  let env: MediaEnv;
  let token: string;
  let db: DataSource;
  let dir: string;
  const rows = async () => ((await db.query('SELECT count(*)::int AS n FROM images')) as Array<{ n: number }>)[0].n;
  const upload = (data: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([data]), 'x.png');
    return env.t.request('/api/images', { method: 'POST', body: form, token });
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'disk-full-'));
    env = await startMediaApp('disk-full', {}, 'local');
    ({ token } = await env.t.register());
    db = env.t.app.get(DataSource);
  });
  afterAll(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  afterEach(() => jest.restoreAllMocks());

  it('a small image whose write runs out of space: 507, no row, no partial file; then room again: 201', async () => {
    const before = { rows: await rows(), files: await env.storage.files() };
    const realWriteFile = fs.writeFile;
    const spy = jest.spyOn(fs, 'writeFile').mockImplementation(((
      file: string,
      data: Buffer,
      opts: fs.WriteFileOptions,
      cb: (err: NodeJS.ErrnoException | null) => void,
    ) => {
      // What a full disk does: the file is created, part of it written, then the write fails.
      realWriteFile(file, data.subarray(0, 16), opts, () => cb(noSpace()));
    }) as unknown as typeof fs.writeFile);
    const res = await upload(await makeImage('png', 50, 50));
    expect(spy).toHaveBeenCalled();
    expect(res.status).toBe(507);
    expect(await res.json()).toEqual({ statusCode: 507, error: 'Insufficient Storage', message: expect.any(String) });
    expect(await rows()).toBe(before.rows);
    expect(await env.storage.files()).toEqual(before.files);

    spy.mockRestore();
    expect((await upload(await makeImage('png', 50, 50))).status).toBe(201);
  });

  it('a staged large image whose move into place runs out of space: 507, no row, no file, the staged copy removed', async () => {
    const file = await noisePng(dir, 1); // over the in-memory limit: staged on disk first
    const before = { rows: await rows(), files: await env.storage.files() };
    const spy = jest.spyOn(fsp, 'rename').mockRejectedValueOnce(noSpace());
    const res = await uploadFile(env.t.url, token, file);
    expect(spy).toHaveBeenCalled();
    expect(res.status).toBe(507);
    expect(JSON.parse(res.body)).toEqual({ statusCode: 507, error: 'Insufficient Storage', message: expect.any(String) });
    expect(await rows()).toBe(before.rows);
    expect(await env.storage.files()).toEqual(before.files); // staging lives under UPLOAD_DIR too
  });
});
