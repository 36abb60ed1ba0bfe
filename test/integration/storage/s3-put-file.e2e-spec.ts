import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PART_BYTES, putObjectFromFile } from '../../../src/storage/s3-put-file';
import { S3TestServer } from '../../support/s3-server';

/**
 * The s3 driver's file upload (src/storage/s3-put-file.ts) against a real S3-compatible server: the
 * object is the file byte for byte whether it takes one PUT or several parts, also when there are more
 * parts than buffers (each buffer is reused) and when two uploads share the idle buffers; a failure
 * or an abort midway rejects and leaves no object.
 */
describe('putObjectFromFile (s3 part uploads from reused buffers)', () => {
  const bucket = 'put-file';
  let s3: S3TestServer;
  let client: S3Client;
  let dir: string;
  let seq = 0;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 's3-put-file-'));
    s3 = await new S3TestServer().start();
    client = s3.client();
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterEach(() => {
    s3.mode = 'pass';
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const fileOf = (bytes: number): { file: string; data: Buffer } => {
    const data = randomBytes(bytes);
    const file = path.join(dir, `f${++seq}`);
    writeFileSync(file, data);
    return { file, data };
  };
  const stored = async (key: string): Promise<Buffer> => {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  };
  const put = (key: string, file: string, signal = new AbortController().signal): Promise<void> =>
    putObjectFromFile(client, { Bucket: bucket, Key: key, ContentType: 'image/png' }, file, signal, 5000);

  it.each([
    ['one byte', 1],
    ['exactly one part', PART_BYTES],
    ['one byte over a part', PART_BYTES + 1],
    ['more parts than buffers, the last one short', 4 * PART_BYTES + 12_345],
  ])(
    'stores %s whole',
    async (_name, bytes) => {
      const { file, data } = fileOf(bytes);
      await put(`k/${bytes}`, file);
      expect((await stored(`k/${bytes}`)).equals(data)).toBe(true);
    },
    60_000,
  );

  it('two uploads at once, each with its own buffers, are both stored whole', async () => {
    const a = fileOf(3 * PART_BYTES + 7);
    const b = fileOf(2 * PART_BYTES + 99);
    await Promise.all([put('two/a', a.file), put('two/b', b.file)]);
    expect((await stored('two/a')).equals(a.data)).toBe(true);
    expect((await stored('two/b')).equals(b.data)).toBe(true);
  }, 60_000);

  it('a store that goes away midway: rejected, no object', async () => {
    const { file } = fileOf(4 * PART_BYTES);
    const midway = s3.whenUploaded(PART_BYTES + 1);
    const pending = put('gone/x', file);
    await midway;
    s3.mode = 'refuse';
    await expect(pending).rejects.toBeDefined();
    s3.mode = 'pass';
    expect(await s3.keys(bucket)).not.toContain('gone/x');
  }, 60_000);

  it('aborted midway: rejected with the abort, no object', async () => {
    const { file } = fileOf(4 * PART_BYTES);
    const ctl = new AbortController();
    const midway = s3.whenUploaded(PART_BYTES + 1);
    const pending = put('aborted/x', file, ctl.signal);
    await midway;
    ctl.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(await s3.keys(bucket)).not.toContain('aborted/x');
  }, 60_000);
});
