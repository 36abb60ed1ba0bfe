import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { DataSource } from 'typeorm';
import { startTestApp, TestApp } from '../../support/app';
import { multipartBody, rawRequest, RawAnswer } from '../../support/raw-http';

/** Every file under `dir` (recursive), staging left-overs included. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)));
}

/** A PNG of noise (it does not compress): `side`² × 3 bytes of pixels. */
const noisePng = (side: number): Promise<Buffer> =>
  sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } }).png().toBuffer();

describe('multipart uploads: every complete request is answered (CONTRACT §3)', () => {
  const boundary = '----spheroseg-test-boundary';
  let t: TestApp;
  let token: string;
  let uploadDir: string;
  let db: DataSource;
  let png: Buffer;
  let bigPng: Buffer;

  beforeAll(async () => {
    uploadDir = path.join(mkdtempSync(path.join(tmpdir(), 'multipart-e2e-')), 'uploads');
    t = await startTestApp({ UPLOAD_DIR: uploadDir, MAX_UPLOAD_BYTES: String(1024 * 1024) });
    db = t.app.get(DataSource);
    ({ token } = await t.register());
    png = await noisePng(16);
    bigPng = await noisePng(280); // ≈ 236 KB, as in the report
    expect(bigPng.length).toBeGreaterThan(200_000);
  });
  afterAll(async () => {
    await t?.close();
    rmSync(path.dirname(uploadDir), { recursive: true, force: true });
  });

  const send = (body: Buffer, contentType = `multipart/form-data; boundary=${boundary}`): Promise<RawAnswer> =>
    rawRequest(t.url, {
      method: 'POST',
      path: '/api/images',
      headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
      body,
      timeoutMs: 10_000,
    });
  const imageRows = async (): Promise<number> =>
    ((await db.query('SELECT count(*)::int AS n FROM images')) as Array<{ n: number }>)[0].n;

  const expect400 = (a: RawAnswer, re?: RegExp): void => {
    expect(a.answered).toBe(true);
    expect(a.status).toBe(400);
    const body = JSON.parse(a.body) as { statusCode: number; error: string; message: string };
    expect(body).toEqual({ statusCode: 400, error: 'Bad Request', message: expect.any(String) });
    if (re) expect(body.message).toMatch(re);
    expect(a.body).not.toContain(uploadDir);
  };

  it('a well-formed body still uploads (the raw client is right)', async () => {
    const a = await send(multipartBody(boundary, { data: png }));
    expect(a.status).toBe(201);
  });

  it.each([
    ['small', 16],
    ['236 KB', 280],
  ])('a %s file whose body never closes its boundary → 400, no file, no row', async (_n, side) => {
    const data = side === 16 ? png : bigPng;
    const rows = await imageRows();
    for (let i = 0; i < 3; i++) expect400(await send(multipartBody(boundary, { data }, false)), /multipart/);
    expect(await imageRows()).toBe(rows);
    expect(filesUnder(path.join(uploadDir, '.incoming'))).toEqual([]);
  });

  it.each([
    ['small', 16],
    ['236 KB', 280],
  ])('a %s file whose name carries a line break → 400 naming the file part, every time', async (_n, side) => {
    const data = side === 16 ? png : bigPng;
    const disposition = `form-data; name="file"; filename*=UTF-8''a%0Ab.png`;
    for (let i = 0; i < 5; i++) expect400(await send(multipartBody(boundary, { disposition, data })), /file/);
    for (let i = 0; i < 3; i++) expect400(await send(multipartBody(boundary, { disposition, data }, false)));
  });

  it('bodies that end without a usable file part → 400', async () => {
    const cases: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from(`--${boundary}\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n`), // cut in the headers
      Buffer.from(`--${boundary}--\r\n`),
      Buffer.from('no boundary anywhere in this body'),
      multipartBody(boundary, { disposition: 'form-data; name="note"', contentType: 'text/plain', data: Buffer.from('hi') }),
      multipartBody(boundary, { disposition: 'form-data; filename="a.png"', data: png }), // no name
      multipartBody(boundary, { disposition: 'attachment', data: png }),
      Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n`), bigPng]),
    ];
    for (const body of cases) expect400(await send(body));
    expect400(await send(multipartBody(boundary, { data: png }), 'multipart/form-data; boundary=other'));
    expect(filesUnder(path.join(uploadDir, '.incoming'))).toEqual([]);
  });

  it('a body over MAX_UPLOAD_BYTES without its closing boundary → 413, answered', async () => {
    const a = await send(multipartBody(boundary, { data: Buffer.concat([png, randomBytes(1024 * 1024 + 10)]) }, false));
    expect(a.answered).toBe(true);
    expect(a.status).toBe(413);
    expect(filesUnder(path.join(uploadDir, '.incoming'))).toEqual([]);
  });
});
