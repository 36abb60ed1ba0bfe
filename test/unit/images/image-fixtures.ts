import sharp from 'sharp';
import { deflateRawSync, deflateSync, constants as zc } from 'node:zlib';
import { openSync, readSync, closeSync } from 'node:fs';

/** Deterministic RGB noise-ish pixels, so encoders cannot collapse them to nothing. */
function pixels(width: number, height: number): Buffer {
  const buf = Buffer.alloc(width * height * 3);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7919 + (i >> 7) * 31) % 251;
  return buf;
}

export type SharpFormat = 'png' | 'jpeg' | 'tiff';

/** A small real image in `format`, encoded by sharp. */
export function makeImage(format: SharpFormat, width = 40, height = 30): Promise<Buffer> {
  return sharp(pixels(width, height), { raw: { width, height, channels: 3 } })
    .toFormat(format)
    .toBuffer();
}

/** A 24-bit bottom-up Windows bitmap written by hand: 14-byte file header + 40-byte BITMAPINFOHEADER + rows. */
export function makeBmp(width = 7, height = 5): Buffer {
  const rowBytes = Math.floor((24 * width + 31) / 32) * 4;
  const dataSize = rowBytes * height;
  const buf = Buffer.alloc(54 + dataSize);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10); // pixel data offset
  buf.writeUInt32LE(40, 14); // BITMAPINFOHEADER
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26); // planes
  buf.writeUInt16LE(24, 28); // bits per pixel
  buf.writeUInt32LE(0, 30); // BI_RGB
  buf.writeUInt32LE(dataSize, 34);
  buf.writeInt32LE(2835, 38);
  buf.writeInt32LE(2835, 42);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = 54 + y * rowBytes + x * 3;
      buf[o] = (x * 40) & 0xff;
      buf[o + 1] = (y * 50) & 0xff;
      buf[o + 2] = 128;
    }
  }
  return buf;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
/** One PNG chunk: length, type, data and its CRC. */
export function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A genuine PNG decompression bomb: `width`×`height` black RGB pixels (20000×20000 = 1.2 GB decoded)
 * in about 1.2 MB. Built in milliseconds: one fully-flushed deflate segment of zero rows is repeated
 * (each full-flush segment is self-contained), then closed with an empty final block and the Adler-32
 * of an all-zero stream (a = 1, b = length mod 65521).
 */
export function makePngBomb(width = 20000, height = 20000): Buffer {
  const rowLen = 1 + width * 3; // filter byte 0 + zero pixels
  let rowsPerSeg = Math.max(1, Math.floor((4 * 1024 * 1024) / rowLen));
  while (height % rowsPerSeg !== 0) rowsPerSeg--;
  const seg = deflateRawSync(Buffer.alloc(rowLen * rowsPerSeg), { level: 9, finishFlush: zc.Z_FULL_FLUSH });
  const total = rowLen * height;
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((total % 65521) << 16) | 1) >>> 0);
  const zlib = Buffer.concat([
    Buffer.from([0x78, 0xda]),
    ...Array.from({ length: height / rowsPerSeg }, () => seg),
    Buffer.from([0x03, 0x00]), // empty final fixed-Huffman block
    adler,
  ]);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The first bytes of the running Node binary: a real executable (ELF on Linux, Mach-O on macOS). */
export function executableHead(bytes = 64 * 1024): Buffer {
  const fd = openSync(process.execPath, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The first half of a valid PNG: the header is intact, the pixel data is cut. */
export async function makeTruncatedPng(): Promise<Buffer> {
  const png = await makeImage('png', 120, 90);
  return png.subarray(0, Math.floor(png.length / 2));
}

export interface RawPngOptions {
  width: number;
  height: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA */
  colourType: number;
  bitDepth: number;
  /** Filter byte of row y (default: y % 5, every filter type in turn). */
  filter?: (y: number) => number;
  /** Rows written (default `height`): fewer or more than the header says makes a wrong-sized image. */
  rows?: number;
  /** The zlib stream is split into IDAT chunks of at most this many bytes. */
  idatSize?: number;
  /** Chunks written between IHDR and the first IDAT. */
  extra?: Buffer[];
  interlace?: number;
}

const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** A PNG written by hand from `opts` (rows of deterministic bytes), for the structural checks. */
export function makeRawPng(opts: RawPngOptions): Buffer {
  const { width, height, colourType, bitDepth } = opts;
  const rowBytes = Math.ceil((width * SAMPLES[colourType] * bitDepth) / 8);
  const rows = opts.rows ?? height;
  const raw = Buffer.alloc(rows * (1 + rowBytes));
  for (let y = 0; y < rows; y++) {
    const at = y * (1 + rowBytes);
    raw[at] = opts.filter ? opts.filter(y) : y % 5;
    for (let x = 0; x < rowBytes; x++) raw[at + 1 + x] = (x * 31 + y * 17) & 0xff;
  }
  const z = deflateSync(raw);
  const size = opts.idatSize ?? z.length;
  const idats: Buffer[] = [];
  for (let o = 0; o < z.length; o += size) idats.push(chunk('IDAT', z.subarray(o, o + size)));
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  ihdr[12] = opts.interlace ?? 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(opts.extra ?? []),
    ...idats,
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Offsets of the chunks of a PNG, in order. */
export function pngChunks(png: Buffer): Array<{ type: string; offset: number; length: number }> {
  const out: Array<{ type: string; offset: number; length: number }> = [];
  for (let o = 8; o + 12 <= png.length; ) {
    const length = png.readUInt32BE(o);
    out.push({ type: png.toString('latin1', o + 4, o + 8), offset: o, length });
    o += 12 + length;
  }
  return out;
}
