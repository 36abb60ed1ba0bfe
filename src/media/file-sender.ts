import { HttpException, Injectable, NotFoundException } from '@nestjs/common';
import send from '@fastify/send';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ImageStorage } from '../images/image-storage';

export interface SendOptions {
  /** Content-Type of the bytes (the stored type, not a guess from the extension). */
  contentType: string;
  /** Content-Disposition, when wanted. */
  disposition?: string;
}

/**
 * Streams a stored file (path relative to UPLOAD_DIR) with @fastify/send: Content-Length, a strong
 * enough ETag (size + mtime) and Last-Modified, single `Range` → 206 (unsatisfiable → 416),
 * `If-None-Match`/`If-Modified-Since` → 304, HEAD. Always `Cache-Control: private`. The file is
 * streamed from disk, never read whole.
 */
@Injectable()
export class FileSender {
  constructor(private readonly storage: ImageStorage) {}

  async send(req: FastifyRequest, reply: FastifyReply, rel: string, opts: SendOptions): Promise<FastifyReply> {
    this.storage.resolve(rel); // throws for anything outside UPLOAD_DIR
    // Conditional requests are decided by the validators alone (RFC 9110 §13.2): a request's
    // `Cache-Control: no-cache` (fetch() adds it to every conditional request) must not turn a 304 into
    // a 200, which @fastify/send would do, so send never sees that header.
    const headers = { ...req.raw.headers };
    delete headers['cache-control'];
    const out = await send({ method: req.raw.method, headers } as typeof req.raw, `/${rel}`, {
      root: this.storage.root,
      dotfiles: 'deny',
      index: false,
      cacheControl: false,
      acceptRanges: true,
      etag: true,
      lastModified: true,
    });
    if (out.type === 'error') {
      out.stream.destroy?.();
      if (out.statusCode === 416) {
        void reply.header('content-range', out.headers['Content-Range'] as string);
        throw new HttpException('the requested range is not satisfiable', 416);
      }
      if (out.statusCode === 412) throw new HttpException('precondition failed', 412);
      if (out.statusCode === 404) throw new NotFoundException('image not found');
      throw new Error(`file could not be sent (${out.statusCode})`);
    }
    if (out.type !== 'file') throw new NotFoundException('image not found');
    const outHeaders = { ...out.headers } as Record<string, string | number>;
    if (out.statusCode === 200 || out.statusCode === 206) outHeaders['Content-Type'] = opts.contentType;
    outHeaders['Cache-Control'] = 'private';
    outHeaders['X-Content-Type-Options'] = 'nosniff';
    if (opts.disposition) outHeaders['Content-Disposition'] = opts.disposition;
    return reply.code(out.statusCode).headers(outHeaders).send(out.stream);
  }
}
