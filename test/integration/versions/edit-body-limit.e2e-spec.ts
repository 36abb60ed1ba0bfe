import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { rawRequest } from '../../support/raw-http';
import { MediaEnv, startMediaApp, uploadBody } from '../media/media-helpers';

const MiB = 1024 * 1024;
const LIMIT = 16 * MiB;

/**
 * Sends only the request head (a Content-Length and no body) and waits for an answer: the server
 * must refuse an announced body over the limit without reading (buffering) any of it.
 */
function headOnly(
  baseUrl: string,
  p: string,
  token: string,
  contentLength: number,
): Promise<number | undefined> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(undefined);
    }, 5000);
    socket.on('data', (c) => {
      text += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', () => resolve(undefined));
    socket.write(
      `PUT ${p} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: ${contentLength}\r\n\r\n`,
    );
  });
}

/** CONTRACT §3: "A request body up to 16 MiB is accepted on this route" — and only on this one. */
describe('PUT /api/images/:id/segmentation body limit', () => {
  let env: MediaEnv;
  let token: string;
  let imageId: number;
  const route = () => `/api/images/${imageId}/segmentation`;

  beforeAll(async () => {
    env = await startMediaApp('editlimit');
    ({ token } = await env.t.register());
    const png = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#fff' } })
      .png()
      .toBuffer();
    imageId = (await uploadBody(env.t, token, png, 'big.png')).id;
  });
  afterAll(async () => {
    await env?.t.close();
    await env?.stub.stop();
    if (env) rmSync(path.dirname(env.uploadDir), { recursive: true, force: true });
  });

  it('accepts a valid body of exactly 16 MiB (200 000 points, padded)', async () => {
    const polygons = Array.from({ length: 10_000 }, (_, i) => {
      const cx = 10 + (i % 100) * 19.8;
      const cy = 10 + Math.floor(i / 100) * 19.8;
      return {
        id: i + 1,
        type: 'external',
        parentId: null,
        points: Array.from({ length: 20 }, (_u, k) => [
          cx + 8 * Math.cos((k * Math.PI) / 10),
          cy + 8 * Math.sin((k * Math.PI) / 10),
        ]),
      };
    });
    const json = JSON.stringify({ baseVersion: 0, polygons });
    const body = json.slice(0, -1) + ' '.repeat(LIMIT - Buffer.byteLength(json)) + '}';
    expect(Buffer.byteLength(body)).toBe(LIMIT);
    const res = await env.t.request(route(), {
      method: 'PUT',
      token,
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
    const result = await res.json();
    expect(result.version).toBe(1);
    expect(result.polygons).toHaveLength(10_000);
  });

  it('refuses an announced body over 16 MiB with 413 before reading any of it', async () => {
    expect(await headOnly(env.t.url, route(), token, LIMIT + 1)).toBe(413);
    // The same announcement on another JSON route is over its 1 MiB limit long before.
    expect(
      await headOnly(env.t.url, `/api/images/${imageId}/segmentation/versions/1/restore`, token, 2 * MiB),
    ).toBe(413);
  });

  it('a malformed body of 16 MiB is 400 (parsed once, nothing stored); over the limit it is 413', async () => {
    const malformed = '{"baseVersion":1,"polygons":[' + 'x'.repeat(LIMIT - 31) + ']}';
    expect(Buffer.byteLength(malformed)).toBe(LIMIT);
    const res = await rawRequest(env.t.url, {
      method: 'PUT',
      path: route(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: malformed,
      timeoutMs: 30_000,
    });
    expect(res.status).toBe(400);
    const over = await rawRequest(env.t.url, {
      method: 'PUT',
      path: route(),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: malformed + ' '.repeat(LIMIT),
      timeoutMs: 30_000,
    });
    expect(over.status).toBe(413);
    expect((await (await env.t.request(`${route()}/versions`, { token })).json()).items).toHaveLength(1);
  });

  it('a chunked body (no Content-Length) is answered 413 once it passes 16 MiB, before the client has sent it all', async () => {
    const url = new URL(env.t.url);
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let answer = '';
    let answered = false;
    socket.on('data', (c) => {
      answer += c.toString('latin1');
      answered = /^HTTP\/1\.1 \d{3}/.test(answer);
    });
    socket.on('error', () => undefined); // the server may close while we are still writing
    socket.write(
      `PUT ${route()} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
    );
    const chunk = Buffer.concat([
      Buffer.from(`${MiB.toString(16)}\r\n`),
      Buffer.alloc(MiB, 0x20),
      Buffer.from('\r\n'),
    ]);
    let sent = 0;
    const deadline = Date.now() + 30_000;
    while (!answered && sent < 64 * MiB && !socket.destroyed && Date.now() < deadline) {
      sent += MiB;
      if (!socket.write(chunk))
        await new Promise<void>((resolve) =>
          socket.once('drain', () => resolve()).once('close', () => resolve()),
        );
    }
    while (!answered && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(sent).toBeLessThan(64 * MiB);
    expect(sent).toBeGreaterThanOrEqual(LIMIT);
  });

  it('other JSON routes keep the 1 MiB limit', async () => {
    const res = await env.t.request(`/api/images/${imageId}/segmentation`, {
      method: 'POST',
      token,
      headers: { 'content-type': 'application/json' },
      body: `{"priority":1${' '.repeat(2 * MiB)}}`,
    });
    expect(res.status).toBe(413);
  });
});
