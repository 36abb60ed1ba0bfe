import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import sharp from 'sharp';

/** A noise PNG of about `mb` MB (stored uncompressed, so its size is its pixels'), written to a file. */
export async function noisePng(dir: string, mb: number): Promise<string> {
  const side = Math.ceil(Math.sqrt((mb * 1024 * 1024) / 3));
  const file = path.join(dir, `noise-${mb}.png`);
  await sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toFile(file);
  return file;
}

/** Streams `file` as a multipart upload (never held in memory by the test); resolves with status and body. */
export function uploadFile(
  baseUrl: string,
  token: string,
  file: string,
): Promise<{ status: number; body: string }> {
  const boundary = `----spheroseg${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const url = new URL(`${baseUrl}/api/images`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': head.length + statSync(file).size + tail.length,
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.write(head);
    const src = createReadStream(file);
    src.on('end', () => req.end(tail));
    src.pipe(req, { end: false });
  });
}
