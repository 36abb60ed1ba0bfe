import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SegmenterError } from './segmenter.errors';

export interface UrlFetchOptions {
  /** Normalised origins (`URL.origin`) that may be fetched; empty: no URL is fetched. */
  allowlist: readonly string[];
  /** Refused (400) above this many bytes, before or while reading. */
  maxBytes: number;
  /** The whole fetch (connect, headers, body) must finish within this. */
  timeoutMs: number;
}

/** `SEGMENTER_URL_ALLOWLIST` → the origins it names (each entry parsed as a URL; path ignored). */
export function parseAllowlist(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => new URL(s).origin);
}

/**
 * The check an `image_url` must pass before anything is fetched (CONTRACT §9): http(s), no user info,
 * an origin in the allowlist. Throws 400; returns the parsed URL.
 */
export function checkImageUrl(raw: string, allowlist: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SegmenterError(400, 'image_url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new SegmenterError(400, 'image_url must be http or https');
  if (url.username || url.password) throw new SegmenterError(400, 'image_url must not carry credentials');
  if (!allowlist.includes(url.origin))
    throw new SegmenterError(400, 'image_url origin is not in SEGMENTER_URL_ALLOWLIST');
  return url;
}

/**
 * Fetches an allowed `image_url` into a temporary file of this process (never under UPLOAD_DIR) and
 * runs `use` on it; the file is removed afterwards. Redirects are never followed (400: a redirect could
 * lead anywhere), and the body is capped at `maxBytes` (400 when the store says or sends more); the pixel
 * limit applies when the file is decoded, as for a file under UPLOAD_DIR. A 404 from the store is 404
 * (the image is missing); another 4xx (an expired link) is 400; the store unreachable or answering 5xx
 * is 502, so the backend retries.
 */
export async function withFetchedImage<T>(
  raw: string,
  opts: UrlFetchOptions,
  use: (file: string) => Promise<T>,
): Promise<T> {
  const url = checkImageUrl(raw, opts.allowlist);
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'manual', signal });
  } catch {
    throw new SegmenterError(502, 'image_url could not be fetched');
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel().catch(() => undefined);
    throw new SegmenterError(400, 'image_url answered with a redirect, which is not followed');
  }
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404) throw new SegmenterError(404, 'image not found');
    if (res.status >= 400 && res.status < 500)
      throw new SegmenterError(400, `image_url answered ${res.status}`);
    throw new SegmenterError(502, 'image_url could not be fetched');
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > opts.maxBytes) {
    await res.body.cancel().catch(() => undefined);
    throw new SegmenterError(400, `image is larger than ${opts.maxBytes} bytes`);
  }
  const dir = path.join(tmpdir(), 'spheroseg-segmenter');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${randomUUID()}.img`);
  try {
    let bytes = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > opts.maxBytes) cb(new SegmenterError(400, `image is larger than ${opts.maxBytes} bytes`));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
        cap,
        createWriteStream(file),
      );
    } catch (err) {
      if (err instanceof SegmenterError) throw err;
      throw new SegmenterError(502, 'image_url could not be fetched');
    }
    return await use(file);
  } finally {
    await unlink(file).catch(() => undefined);
  }
}
