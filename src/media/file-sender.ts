import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ObjectStore, RangeNotSatisfiableError } from '../storage/object-store';

export interface SendOptions {
  /** Content-Type of the bytes (the stored type, not a guess from the extension). */
  contentType: string;
  /** Content-Disposition, when wanted. */
  disposition?: string;
}

/**
 * Streams a stored object (a storage key) as the ObjectStore opens it: Content-Length, an ETag and
 * Last-Modified, single `Range` → 206 (unsatisfiable → 416 with `Content-Range: bytes *\/size`),
 * `If-None-Match` → 304, HEAD. Always `Cache-Control: private`. The bytes are streamed from the store
 * (disk or bucket), never read whole.
 */
@Injectable()
export class FileSender {
  constructor(private readonly store: ObjectStore) {}

  async send(req: FastifyRequest, reply: FastifyReply, rel: string, opts: SendOptions): Promise<FastifyReply> {
    let out;
    try {
      out = await this.store.read(rel, { method: req.raw.method, headers: req.raw.headers });
    } catch (err) {
      if (err instanceof RangeNotSatisfiableError) void reply.header('content-range', err.contentRange);
      throw err;
    }
    const headers: Record<string, string | number> = { ...out.headers };
    if (out.status === 200 || out.status === 206) headers['Content-Type'] = opts.contentType;
    headers['Cache-Control'] = 'private';
    headers['X-Content-Type-Options'] = 'nosniff';
    if (opts.disposition) headers['Content-Disposition'] = opts.disposition;
    reply.code(out.status).headers(headers);
    return out.body ? reply.send(out.body) : reply.send();
  }
}
