import { PutObjectCommand, CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { greyPng } from '../fixtures/image-files';
import { generateSynthetic } from '../fixtures/synthetic';
import { freeLoopbackPort } from '../support/pg-instance';
import { S3TestServer } from '../support/s3-server';
import { type RunningService, ensureBuilt, spawnService, waitHealthy } from './service-process';

/**
 * The reference segmenter's `image_url` (CONTRACT §9): fetched only from SEGMENTER_URL_ALLOWLIST
 * origins, never through a redirect, within the size limit; a presigned link that expired is refused.
 */
describe('reference segmenter: image_url and SEGMENTER_URL_ALLOWLIST', () => {
  let s3: S3TestServer;
  let service: RunningService;
  let uploads: string;
  /** A server that is NOT allowed (counts every request it gets) and redirects `/to-s3` to the store. */
  let other: http.Server;
  let otherUrl: string;
  let otherHits = 0;
  let redirectTo = '';
  let maxBytes = 0;
  const BUCKET = 'segmenter-urls';
  const client = () => s3.client();

  const segment = async (body: Record<string, unknown>) => {
    const res = await fetch(`${service.url}/segment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task_id: 't-1', image_path: 'images/x.png', ...body }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const presign = async (key: string, expiresIn = 600) => {
    const c = client();
    try {
      return await getSignedUrl(c, new GetObjectCommand({ Bucket: BUCKET, Key: key }), { expiresIn });
    } finally {
      c.destroy();
    }
  };

  beforeAll(async () => {
    ensureBuilt();
    s3 = await new S3TestServer().start();
    const c = client();
    await c.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const scene = generateSynthetic(7, { spheroids: 2, touchingPair: false });
    const png = await greyPng({ width: scene.width, height: scene.height, data: scene.grey });
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'images/scene.png', Body: png }));
    await c.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'images/big.png', Body: Buffer.alloc(png.length * 3, 1) }),
    );
    c.destroy();
    maxBytes = png.length * 2;
    other = http.createServer((req, res) => {
      otherHits++;
      if (req.url === '/to-s3') res.writeHead(302, { location: redirectTo }).end();
      else res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    uploads = await mkdtemp(path.join(tmpdir(), 'segmenter-url-uploads-'));
    const port = String(await freeLoopbackPort());
    service = spawnService({
      UPLOAD_DIR: uploads,
      SEGMENTER_PORT: port,
      SEGMENTER_THREADS: '1',
      SEGMENTER_URL_ALLOWLIST: `${s3.endpoint}, http://minio.invalid:9000`,
      SEGMENTER_MAX_FETCH_BYTES: String(maxBytes),
    });
    await waitHealthy(service);
  }, 180_000);

  afterAll(async () => {
    if (service?.child.exitCode === null) {
      service.child.kill('SIGKILL');
      await service.exited;
    }
    await new Promise<void>((r) => (other ? other.close(() => r()) : r()));
    await s3?.stop();
    if (uploads) await rm(uploads, { recursive: true, force: true });
  });

  it('segments an image fetched from an allowed origin (a presigned link to the store)', async () => {
    const res = await segment({ image_url: await presign('images/scene.png') });
    expect(res.body.error).toBeUndefined();
    expect(res).toMatchObject({ status: 200, body: { success: true } });
    expect((res.body.results as { polygons: unknown[] }).polygons.length).toBeGreaterThan(0);
  });

  it('refuses another origin with 400, and fetches nothing', async () => {
    const before = otherHits;
    const res = await segment({ image_url: `${otherUrl}/images/scene.png` });
    expect(res).toEqual({
      status: 400,
      body: { success: false, error: expect.stringMatching(/SEGMENTER_URL_ALLOWLIST/) },
    });
    expect(otherHits).toBe(before);
  });

  it.each([
    ['a file URL', 'file:///etc/passwd'],
    ['credentials in the URL', () => `http://user:pw@${new URL(s3.endpoint).host}/x`],
    ['not a URL', 'not a url'],
    ['the allowed host on another port', () => `http://127.0.0.1:1/${BUCKET}/images/scene.png`],
  ])('refuses %s with 400', async (_name, url) => {
    const res = await segment({ image_url: typeof url === 'function' ? url() : url });
    expect(res.status).toBe(400);
    expect(res.body.success).toBe(false);
  });

  it('never follows a redirect, even from an allowed origin to an allowed one', async () => {
    // s3rver never redirects, so a service whose allowlist names the redirecting server is used.
    const port = String(await freeLoopbackPort());
    const svc = spawnService({
      UPLOAD_DIR: uploads,
      SEGMENTER_PORT: port,
      SEGMENTER_THREADS: '1',
      SEGMENTER_URL_ALLOWLIST: otherUrl,
    });
    try {
      await waitHealthy(svc);
      redirectTo = `${otherUrl}/images/scene.png`;
      const before = otherHits;
      const res = await fetch(`${svc.url}/segment`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task_id: 't', image_path: 'x.png', image_url: `${otherUrl}/to-s3` }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/redirect/);
      expect(otherHits).toBe(before + 1); // the redirect itself, not its target
    } finally {
      svc.child.kill('SIGKILL');
      await svc.exited;
    }
  }, 120_000);

  it('refuses an image larger than SEGMENTER_MAX_FETCH_BYTES with 400', async () => {
    const res = await segment({ image_url: await presign('images/big.png') });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(new RegExp(`larger than ${maxBytes} bytes`));
  });

  it('a missing object → 404; an expired presigned link → 400', async () => {
    expect((await segment({ image_url: await presign('images/none.png') })).status).toBe(404);
    const link = await presign('images/scene.png', 1);
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250)); // polls until the link's expiry has passed
      status = (await fetch(link)).status;
    }
    expect(status).toBe(403);
    expect((await segment({ image_url: link })).status).toBe(400);
  });

  it('with an empty allowlist no URL is fetched (400)', async () => {
    const port = String(await freeLoopbackPort());
    const svc = spawnService({ UPLOAD_DIR: uploads, SEGMENTER_PORT: port, SEGMENTER_THREADS: '1' });
    try {
      await waitHealthy(svc);
      const res = await fetch(`${svc.url}/segment`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          task_id: 't',
          image_path: 'x.png',
          image_url: await presign('images/scene.png'),
        }),
      });
      expect(res.status).toBe(400);
    } finally {
      svc.child.kill('SIGKILL');
      await svc.exited;
    }
  }, 120_000);
});
