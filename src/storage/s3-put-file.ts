import {
  AbortMultipartUploadCommand,
  CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { FileHandle, open } from 'node:fs/promises';

/** Multipart part size (S3's minimum for every part but the last). */
export const PART_BYTES = 5 * 1024 * 1024;
/** Parts sent at once: with {@link PART_BYTES}, the memory an upload holds, whatever the file's size. */
export const PARTS_IN_FLIGHT = 2;

/**
 * Part buffers between uploads (at most PARTS_IN_FLIGHT, 10 MiB, kept once a file over 64 KiB was
 * stored): an upload reuses them instead of allocating its own, so storing a file leaves no garbage
 * in proportion to its size.
 */
const idle: Buffer[] = [];
const takeBuffer = (): Buffer => idle.pop() ?? Buffer.allocUnsafeSlow(PART_BYTES);
const giveBack = (buf: Buffer): void => {
  if (idle.length < PARTS_IN_FLIGHT) idle.push(buf);
};

export interface PutTarget {
  Bucket: string;
  Key: string;
  ContentType: string;
}

/**
 * Stores the file at `path` as one object: a single PUT up to {@link PART_BYTES}, else a multipart
 * upload with {@link PARTS_IN_FLIGHT} parts in flight, each read from the file into a buffer of its
 * own that is reused for the next part. The memory held is those buffers, whatever the file's size.
 *
 * Not `@aws-sdk/lib-storage`'s Upload: with a stream as Body it copies every part into a new Buffer
 * (Buffer.concat of what it read, 10 MiB a part with 5 MiB reads), and those copies, dead once sent,
 * piled up until V8's external-memory limit forced a full GC: the api's peak RSS grew 53 MB while a
 * 40 MB file was sent, against 10 MiB of buffers here.
 *
 * On any failure (or `signal` aborted) the parts sent are discarded (AbortMultipartUpload, bounded by
 * `abortTimeoutMs`) and the error is thrown; an object is created only by the final Complete (or PUT).
 */
export async function putObjectFromFile(
  client: S3Client,
  target: PutTarget,
  path: string,
  signal: AbortSignal,
  abortTimeoutMs: number,
): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size <= PART_BYTES) {
      const buf = takeBuffer();
      await readFully(fh, buf, size, 0);
      await client.send(
        new PutObjectCommand({ ...target, Body: buf.subarray(0, size), ContentLength: size }),
        {
          abortSignal: signal,
        },
      );
      giveBack(buf); // only once the request is over: a failed one may still hold it
      return;
    }
    await putMultipart(client, target, fh, size, signal, abortTimeoutMs);
  } finally {
    await fh.close();
  }
}

async function putMultipart(
  client: S3Client,
  target: PutTarget,
  fh: FileHandle,
  size: number,
  signal: AbortSignal,
  abortTimeoutMs: number,
): Promise<void> {
  const { Bucket, Key } = target;
  const { UploadId } = await client.send(new CreateMultipartUploadCommand(target), { abortSignal: signal });
  if (!UploadId) throw new Error('the store gave no UploadId');
  const count = Math.ceil(size / PART_BYTES);
  const parts: CompletedPart[] = [];
  const stop = new AbortController();
  const stopped = AbortSignal.any([signal, stop.signal]);
  let next = 0;
  let failure: { err: unknown } | undefined;

  const sender = async (): Promise<void> => {
    const buf = takeBuffer();
    try {
      while (next < count && !stopped.aborted) {
        const index = next++;
        const offset = index * PART_BYTES;
        const length = Math.min(PART_BYTES, size - offset);
        await readFully(fh, buf, length, offset);
        const out = await client.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId,
            PartNumber: index + 1,
            Body: buf.subarray(0, length),
            ContentLength: length,
          }),
          { abortSignal: stopped },
        );
        if (!out.ETag) throw new Error(`part ${index + 1} stored without an ETag`);
        parts.push({ PartNumber: index + 1, ETag: out.ETag });
      }
      giveBack(buf);
    } catch (err) {
      failure ??= { err }; // the first error; the other sender then stops with an abort of its own
      stop.abort();
    }
  };

  try {
    await Promise.all(Array.from({ length: Math.min(PARTS_IN_FLIGHT, count) }, sender));
    if (failure) throw failure.err;
    signal.throwIfAborted();
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
      { abortSignal: signal },
    );
  } catch (err) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }), {
        abortSignal: AbortSignal.timeout(abortTimeoutMs),
      })
      .catch(() => undefined);
    throw err;
  }
}

/** Reads `length` bytes at `position` into the start of `buf`. */
async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new Error('the file ended before its size');
    done += bytesRead;
  }
}
