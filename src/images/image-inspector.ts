import {
  BadRequestException,
  Inject,
  Injectable,
  PayloadTooLargeException,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { open } from 'node:fs/promises';
// The `core` entry of file-type (ESM-only) resolves under both Node's require(esm) and Jest's resolver.
import { fileTypeFromBuffer } from 'file-type/core';
import sharp from 'sharp';
import { uploadsConfig } from '../config/configuration';
import { checkPng, isPng } from './png-check';

export type AcceptedMime = 'image/png' | 'image/jpeg' | 'image/tiff' | 'image/bmp';

export interface ImageInfo {
  mime: AcceptedMime;
  /** Extension of the stored file. */
  ext: 'png' | 'jpg' | 'tif' | 'bmp';
  width: number;
  height: number;
}

/** file-type result → accepted format. APNG is a PNG whose first frame every PNG decoder reads. */
const ACCEPTED: Record<string, Pick<ImageInfo, 'mime' | 'ext'>> = {
  png: { mime: 'image/png', ext: 'png' },
  apng: { mime: 'image/png', ext: 'png' },
  jpg: { mime: 'image/jpeg', ext: 'jpg' },
  tif: { mime: 'image/tiff', ext: 'tif' },
  bmp: { mime: 'image/bmp', ext: 'bmp' },
};

const FORMAT_NAME: Record<AcceptedMime, string> = {
  'image/png': 'PNG',
  'image/jpeg': 'JPEG',
  'image/tiff': 'TIFF',
  'image/bmp': 'BMP',
};

/** Bytes read for type detection and the BMP header. */
const HEAD_BYTES = 64 * 1024;
/**
 * A PNG held in memory whose rows take more than this decompressed is checked by libvips (which
 * streams the rows) rather than inflated whole by {@link checkPng}.
 */
const JS_PNG_MAX_RAW_BYTES = 2 * 1024 * 1024;

/**
 * Decides whether an uploaded file is an image we accept, from its content only:
 *  1. type by magic bytes (file-type): PNG, JPEG, TIFF, BMP; anything else → 415;
 *  2. dimensions from the header only (sharp metadata, or the BMP header), refused with 413 when
 *     width × height > MAX_IMAGE_PIXELS, before any pixel is decoded (decompression bombs);
 *  3. a full decode (PNG, JPEG, TIFF) under the same pixel limit, failing on errors and truncation
 *     (for PNG/JPEG by decoding down to the last row, which streams every row through libvips),
 *     or for BMP a header/size consistency check → 400 when the file does not decode.
 * A plain PNG held in memory (a small upload) is checked in JS instead ({@link checkPng}: structure,
 * CRCs, the inflated rows' size and filter bytes), which costs a fraction of the two libvips calls;
 * one that fails or falls outside that check goes through the steps above, so every refusal is the
 * one libvips gives (same status, same message).
 * Messages never contain server paths.
 */
@Injectable()
export class ImageInspector {
  constructor(@Inject(uploadsConfig.KEY) private readonly cfg: ConfigType<typeof uploadsConfig>) {}

  /** `source`: the path of a staged file, or an upload held in memory. */
  async inspect(source: string | Buffer): Promise<ImageInfo> {
    if (typeof source !== 'string' && isPng(source)) {
      const png = checkPng(source, { maxPixels: this.cfg.maxPixels, maxRawBytes: JS_PNG_MAX_RAW_BYTES });
      if (png.kind === 'valid') return { ...ACCEPTED.png, width: png.width, height: png.height };
    }
    const { head, size } =
      typeof source === 'string'
        ? await readHead(source, HEAD_BYTES)
        : { head: source.subarray(0, HEAD_BYTES), size: source.length };
    const detected = size > 0 ? await fileTypeFromBuffer(head).catch(() => undefined) : undefined;
    const accepted = detected ? ACCEPTED[detected.ext] : undefined;
    if (!accepted) {
      throw new UnsupportedMediaTypeException(
        `unsupported file type${detected ? ` (${detected.mime})` : ''}: only PNG, JPEG, TIFF and BMP images are accepted`,
      );
    }
    const name = FORMAT_NAME[accepted.mime];

    if (accepted.mime === 'image/bmp') {
      const bmp = parseBmpHeader(head, size);
      if (typeof bmp === 'string')
        throw new BadRequestException(`the file is not a decodable BMP image: ${bmp}`);
      this.checkPixels(bmp.width, bmp.height);
      return { ...accepted, width: bmp.width, height: bmp.height };
    }

    let width: number | undefined;
    let height: number | undefined;
    try {
      // Reads the header only; no pixel is decoded here.
      const meta = await sharp(source, { limitInputPixels: false }).metadata();
      width = meta.width;
      height = meta.height;
    } catch {
      throw new BadRequestException(`the file is not a decodable ${name} image: unreadable header`);
    }
    if (!width || !height)
      throw new BadRequestException(`the file is not a decodable ${name} image: no dimensions`);
    this.checkPixels(width, height);

    try {
      const decoder = sharp(source, {
        limitInputPixels: this.cfg.maxPixels,
        failOn: 'error',
        sequentialRead: true,
      });
      if (accepted.mime === 'image/tiff') {
        // TIFF strips/tiles can be read out of order, so only a pass over every pixel proves they all decode.
        await decoder.stats();
      } else {
        // PNG and (baseline or progressive) JPEG decode strictly top to bottom: producing the last row
        // makes libvips decode every row before it, streamed through a few-line buffer, so a corrupt or
        // truncated file fails here as it would in a full decode — at a fraction of the cost of stats()
        // (≈ 9 ms of CPU for a 16×16 PNG, 0.5 s for a 4000×4000 one) and without a full-size buffer.
        await decoder.extract({ left: 0, top: height - 1, width, height: 1 }).raw().toBuffer();
      }
    } catch {
      throw new BadRequestException(`the file is not a decodable ${name} image: corrupt or truncated data`);
    }
    return { ...accepted, width, height };
  }

  /** 413: the upload is too large in pixels, as an over-sized file is too large in bytes. */
  private checkPixels(width: number, height: number): void {
    if (width * height > this.cfg.maxPixels) {
      throw new PayloadTooLargeException(
        `image is ${width}x${height} = ${width * height} pixels, more than the limit of ${this.cfg.maxPixels} pixels`,
      );
    }
  }
}

async function readHead(absPath: string, max: number): Promise<{ head: Buffer; size: number }> {
  const fh = await open(absPath, 'r');
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(Math.min(max, size));
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return { head: buf.subarray(0, off), size };
  } finally {
    await fh.close();
  }
}

export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
  compression: number;
}

const BI_RGB = 0;
const BI_RLE8 = 1;
const BI_RLE4 = 2;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/**
 * Validates a Windows bitmap from its headers and its size, without decoding it. Returns the header,
 * or a short reason why the file cannot be a valid bitmap. Uncompressed (and bit-field) bitmaps must
 * contain every pixel row; for RLE bitmaps the pixel data must at least start inside the file.
 */
export function parseBmpHeader(head: Buffer, fileSize: number): BmpHeader | string {
  if (head.length < 26 || head.toString('latin1', 0, 2) !== 'BM') return 'header too short';
  const dataOffset = head.readUInt32LE(10);
  const dibSize = head.readUInt32LE(14);
  let width: number;
  let height: number;
  let planes: number;
  let bpp: number;
  let compression = BI_RGB;
  if (dibSize === 12) {
    // BITMAPCOREHEADER (OS/2 1.x)
    width = head.readUInt16LE(18);
    height = head.readUInt16LE(20);
    planes = head.readUInt16LE(22);
    bpp = head.readUInt16LE(24);
  } else if ([40, 52, 56, 64, 108, 124].includes(dibSize)) {
    if (head.length < 14 + 20) return 'header too short';
    width = head.readInt32LE(18);
    height = head.readInt32LE(22);
    planes = head.readUInt16LE(26);
    bpp = head.readUInt16LE(28);
    compression = head.readUInt32LE(30);
  } else {
    return `unknown header size ${dibSize}`;
  }
  const absHeight = Math.abs(height); // negative height = top-down rows
  if (width <= 0 || absHeight === 0) return 'invalid dimensions';
  if (planes !== 1) return 'invalid plane count';
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) return `unsupported bit depth ${bpp}`;
  if (dataOffset < 14 + dibSize || dataOffset >= fileSize) return 'pixel data offset outside the file';

  if (compression === BI_RGB || compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    if ((compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) && bpp !== 16 && bpp !== 32) {
      return 'bit fields need 16 or 32 bits per pixel';
    }
    const rowBytes = Math.floor((bpp * width + 31) / 32) * 4;
    if (dataOffset + rowBytes * absHeight > fileSize) return 'pixel data is truncated';
  } else if (compression === BI_RLE8 || compression === BI_RLE4) {
    if (height < 0) return 'RLE bitmaps cannot be top-down';
    if ((compression === BI_RLE8 && bpp !== 8) || (compression === BI_RLE4 && bpp !== 4))
      return 'RLE bit depth mismatch';
  } else {
    return `unsupported compression ${compression}`;
  }
  return { width, height: absHeight, bitsPerPixel: bpp, compression };
}
