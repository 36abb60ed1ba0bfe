import { crc32, inflateSync } from 'node:zlib';

/** The eight bytes every PNG file starts with. */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export const isPng = (buf: Buffer): boolean =>
  buf.length >= PNG_SIGNATURE.length && buf.compare(PNG_SIGNATURE, 0, 8, 0, 8) === 0;

/**
 * - `valid`: every check below passed; the image decodes.
 * - `invalid`: the file breaks the PNG format (bad CRC, truncated or corrupt pixel data, …).
 * - `unsupported`: well-formed so far, but outside what this check covers (palette, interlaced,
 *   chunks other than the few listed, over the pixel or size limits): libvips has to decide.
 */
export type PngVerdict =
  | { kind: 'valid'; width: number; height: number }
  | { kind: 'invalid'; reason: string }
  | { kind: 'unsupported'; reason: string };

export interface PngLimits {
  /** width × height above this is left to the caller's pixel limit (`unsupported`). */
  maxPixels: number;
  /** Decompressed size (filter bytes included) above this is not inflated here (`unsupported`). */
  maxRawBytes: number;
}

/** Colour type → samples per pixel, for the colour types checked here (3, palette, is not). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };
/** Colour type → allowed bit depths (PNG 1.2 §4.1.1, IHDR). */
const BIT_DEPTHS: Record<number, readonly number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const MAX_U31 = 2 ** 31 - 1;

/**
 * Ancillary chunks that may come between IHDR and the first IDAT, each at most once, with a content
 * check strict enough that a decoder cannot object to them. Any other chunk is `unsupported`.
 */
const SIMPLE_ANCILLARY: Record<string, (d: Buffer) => boolean> = {
  pHYs: (d) => d.length === 9 && d.readUInt32BE(0) <= MAX_U31 && d.readUInt32BE(4) <= MAX_U31 && d[8] <= 1,
  sRGB: (d) => d.length === 1 && d[0] <= 3,
  gAMA: (d) => d.length === 4 && d.readUInt32BE(0) !== 0 && d.readUInt32BE(0) <= MAX_U31,
};

const invalid = (reason: string): PngVerdict => ({ kind: 'invalid', reason });
const unsupported = (reason: string): PngVerdict => ({ kind: 'unsupported', reason });

/**
 * Validates a whole non-interlaced, non-palette PNG held in memory without decoding its pixels:
 * the signature; IHDR first (dimensions 1..2^31-1, a legal bit depth for the colour type, compression,
 * filter and interlace methods 0); every chunk complete with a correct CRC; IDAT chunks consecutive
 * (only pHYs, sRGB and gAMA may come between IHDR and them);
 * their concatenation a complete zlib stream (Adler-32 checked) that inflates to exactly the size of
 * the rows (one filter byte plus the packed samples per row) with every filter byte 0..4; IEND last,
 * empty, and the end of the file. That is what a decoder needs to produce every row (the filters
 * themselves cannot fail), so a `valid` PNG decodes.
 */
export function checkPng(buf: Buffer, limits: PngLimits): PngVerdict {
  if (!isPng(buf)) return invalid('no PNG signature');
  let off = PNG_SIGNATURE.length;
  let width = 0;
  let height = 0;
  let rowBytes = 0;
  let rawBytes = 0;
  const idat: Buffer[] = [];
  let idatBytes = 0;
  const seen = new Set<string>();

  for (;;) {
    if (off === buf.length) return invalid('no IEND chunk');
    if (off + 12 > buf.length) return invalid('truncated chunk header');
    const len = buf.readUInt32BE(off);
    if (len > MAX_U31) return invalid('chunk length over 2^31-1');
    const end = off + 12 + len;
    if (end > buf.length) return invalid('truncated chunk');
    const type = buf.toString('latin1', off + 4, off + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) return invalid('invalid chunk type');
    if (crc32(buf.subarray(off + 4, off + 8 + len)) !== buf.readUInt32BE(off + 8 + len))
      return invalid(`bad CRC in ${type}`);
    const data = buf.subarray(off + 8, off + 8 + len);
    off = end;

    if (seen.size === 0) {
      if (type !== 'IHDR' || len !== 13) return invalid('the first chunk is not a 13-byte IHDR');
      seen.add(type);
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, compression, filter, interlace] = data.subarray(8, 13);
      if (width === 0 || height === 0 || width > MAX_U31 || height > MAX_U31)
        return invalid('invalid dimensions');
      if (!BIT_DEPTHS[colour]?.includes(depth)) return invalid('invalid bit depth or colour type');
      if (compression !== 0 || filter !== 0 || interlace > 1)
        return invalid('invalid compression, filter or interlace method');
      if (interlace === 1) return unsupported('interlaced');
      if (colour === 3) return unsupported('palette');
      if (width * height > limits.maxPixels) return unsupported('over the pixel limit');
      rowBytes = Math.ceil((width * CHANNELS[colour] * depth) / 8);
      rawBytes = height * (1 + rowBytes);
      if (rawBytes > limits.maxRawBytes) return unsupported('too large to inflate here');
      continue;
    }
    if (type === 'IDAT') {
      idat.push(data);
      idatBytes += len;
      continue;
    }
    if (type === 'IEND') {
      if (len !== 0) return invalid('IEND is not empty');
      if (idat.length === 0) return invalid('no IDAT chunk');
      if (off !== buf.length) return unsupported('data after IEND');
      break;
    }
    if (type === 'IHDR') return invalid('a second IHDR');
    // Only the few simple chunks, before the pixel data (so the IDAT chunks are consecutive).
    const check = SIMPLE_ANCILLARY[type];
    if (!check || idat.length > 0 || seen.has(type) || !check(data)) return unsupported(`chunk ${type}`);
    seen.add(type);
  }

  const zdata = idat.length === 1 ? idat[0] : Buffer.concat(idat, idatBytes);
  let raw: Buffer;
  try {
    // At most the rows' size is produced: a longer stream fails here instead of growing in memory.
    const out = inflateSync(zdata, { maxOutputLength: rawBytes, info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    if (out.engine.bytesWritten !== zdata.length) return unsupported('data after the zlib stream');
    raw = out.buffer;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      return invalid('more image data than the rows hold');
    return invalid('corrupt or truncated image data');
  }
  if (raw.length !== rawBytes) return invalid('less image data than the rows need');
  for (let at = 0; at < rawBytes; at += rowBytes + 1) {
    if (raw[at] > 4) return invalid('invalid row filter type');
  }
  return { kind: 'valid', width, height };
}
