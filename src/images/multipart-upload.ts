import { BadRequestException, HttpException } from '@nestjs/common';
import { Busboy, BusboyInstance } from '@fastify/busboy';
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { StagedFile } from './image-storage';
import { tooLarge } from './image-storage';

export const FILE_FIELD = 'file';
export const NOT_MULTIPART = `file is required: send the image as multipart/form-data in a field named "${FILE_FIELD}"`;
const MALFORMED = 'malformed multipart body: it ended before its closing boundary or a part is not well-formed';
const FILE_HWM = 256 * 1024;
const TOO_MANY = `too many parts: send a single file in the field "${FILE_FIELD}"`;

/** The one file part of an upload, written to the staging area (not yet inspected or accepted). */
export interface ReceivedUpload {
  staged: StagedFile;
  /** Client-supplied name; metadata only (may contain anything, sanitised before it is stored). */
  filename: string;
}

export interface ReceiveOptions {
  maxBytes: number;
  /** Streams a file part to a staging file; must attach to `source` before it returns (see ImageStorage.stage). */
  stage(source: Readable, maxBytes: number): Promise<StagedFile>;
  /** Deletes a staged file that is not used. */
  discard(staged: StagedFile): Promise<void>;
}

/**
 * Lets multipart bodies through Fastify untouched: the upload route reads the request stream itself
 * ({@link receiveUpload}), so nothing is buffered and Fastify's JSON body limit does not apply.
 */
export function registerMultipartPassthrough(fastify: FastifyInstance): void {
  fastify.addContentTypeParser('multipart/form-data', (_req, _payload, done) => done(null));
}

/**
 * Reads a multipart/form-data request with busboy and hands its `file` part to `stage` as it arrives
 * (ImageStorage.stage: a small file is collected in memory, a larger one streamed to the staging area,
 * never held whole). Settles exactly once, after the whole body has been read
 * (so the answer is never sent while the client is still sending), in every case:
 *  - the body is well-formed and has a file in `file` → the staged file;
 *  - over `maxBytes` → 413 (the rest of the body is read and dropped);
 *  - it ends before its closing boundary, or is otherwise malformed → 400;
 *  - no file part in `file` (fields only, another field name, a part busboy cannot use) → 400;
 *  - more than one file or too many parts → 400;
 *  - the client goes away → rejected (nobody is left to answer).
 * A staged file is deleted on every failure.
 *
 * @fastify/busboy is driven directly rather than through @fastify/multipart: there, a file stream the
 * parser destroyed (a body without its closing boundary) before the handler attached to it left
 * `req.file()`'s caller waiting forever, and a part busboy skipped could stall the parser (FILE_HWM).
 * busboy 1.x has neither stall but refuses any control character in a part header (a file name with
 * \x01, which browsers send as is, would be a 400 instead of being stored without it).
 */
export function receiveUpload(req: IncomingMessage, opts: ReceiveOptions): Promise<ReceivedUpload> {
  let bb: BusboyInstance;
  try {
    if (!/^multipart\/form-data\b/i.test(req.headers['content-type'] ?? '')) throw new Error('not multipart');
    bb = Busboy({
      headers: req.headers as { 'content-type': string },
      // Above the largest chunk a socket read delivers (64 KiB): @fastify/busboy's part parser stalls for
      // good when a part it skips itself (e.g. a file name with a line break) ends while its buffer is
      // full, since nothing reads a skipped part again to lift the back-pressure. A file part is read
      // as it comes (held in memory only up to SMALL_UPLOAD_BYTES, else written to disk), so at most
      // this much more of it is buffered here.
      fileHwm: FILE_HWM,
      limits: { fileSize: opts.maxBytes, files: 1, fields: 5, parts: 6, fieldSize: 64 * 1024, headerPairs: 20 },
    });
  } catch {
    // Not multipart/form-data, or no boundary parameter.
    req.resume();
    return Promise.reject(new BadRequestException(NOT_MULTIPART));
  }

  return new Promise<ReceivedUpload>((resolve, reject) => {
    let staging: Promise<StagedFile> | undefined;
    let filename = '';
    let otherField: string | undefined;
    let truncated = false;
    let problem: HttpException | undefined;
    let settled = false;

    const settle = async (parseError: HttpException | undefined, gone = false): Promise<void> => {
      if (settled) return;
      settled = true;
      req.unpipe(bb);
      let staged: StagedFile | undefined;
      let stageError: unknown;
      if (staging) {
        try {
          staged = await staging;
        } catch (err) {
          stageError = err;
        }
      }
      const refusal: unknown = gone
        ? new BadRequestException('the client closed the connection before the upload ended')
        : truncated
          ? tooLarge(opts.maxBytes)
          : (parseError ??
            problem ??
            (stageError instanceof HttpException ? stageError : undefined) ??
            (staging ? stageError : undefined) ??
            (staging
              ? undefined
              : new BadRequestException(
                  otherField !== undefined
                    ? `file is required: the image must be sent in the field "${FILE_FIELD}", not "${otherField.slice(0, 64)}"`
                    : NOT_MULTIPART,
                )));
      if (refusal !== undefined || !staged) {
        if (staged) await opts.discard(staged);
        if (!gone && req.readableEnded === false) req.resume(); // drop what is left; the answer follows
        reject(refusal ?? new BadRequestException(NOT_MULTIPART));
        return;
      }
      resolve({ staged, filename });
    };

    bb.on('file', (name, stream, clientName) => {
      if (name !== FILE_FIELD || staging) {
        if (name !== FILE_FIELD) otherField ??= name;
        stream.resume();
        return;
      }
      filename = clientName ?? '';
      stream.on('limit', () => {
        truncated = true;
      });
      // Attached synchronously: the parser may destroy the stream (truncated body) on the next tick.
      staging = opts.stage(stream, opts.maxBytes);
      staging.catch(() => undefined); // awaited in settle()
    });
    bb.on('partsLimit', () => (problem ??= new BadRequestException(TOO_MANY)));
    bb.on('filesLimit', () => (problem ??= new BadRequestException(TOO_MANY)));
    bb.on('fieldsLimit', () => (problem ??= new BadRequestException(TOO_MANY)));
    bb.on('error', () => void settle(new BadRequestException(MALFORMED)));
    bb.on('finish', () => void settle(undefined));
    req.on('aborted', () => void settle(undefined, true));
    req.on('error', () => void settle(undefined, true));
    req.pipe(bb);
  });
}
