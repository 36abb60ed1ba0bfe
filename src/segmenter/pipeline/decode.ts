import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import decodeBmp from 'decode-bmp';
import { imageSize } from 'image-size';
import type { GreyImage } from './grey-image';

/** The file is not an image this service can read (bad input: the caller gets a 4xx). */
export class ImageDecodeError extends Error {}

const BMP_MAGIC = [0x42, 0x4d]; // "BM"

/**
 * Decodes PNG, JPEG, TIFF (8 or 16 bit, grey or colour, through sharp) and BMP (through decode-bmp,
 * which sharp cannot read) to 8-bit greyscale. The pixel limit is checked from the header before any
 * pixel is decoded. Transparent PNG/TIFF pixels are composited on white, like a brightfield background.
 */
export async function decodeToGrey(filePath: string, maxPixels: number): Promise<GreyImage> {
  const bytes = await readFile(filePath);
  return isBmp(bytes) ? decodeBmpToGrey(bytes, maxPixels) : decodeWithSharp(bytes, maxPixels);
}

function isBmp(bytes: Buffer): boolean {
  return bytes.length > 2 && bytes[0] === BMP_MAGIC[0] && bytes[1] === BMP_MAGIC[1];
}

async function decodeWithSharp(bytes: Buffer, maxPixels: number): Promise<GreyImage> {
  const options = { limitInputPixels: maxPixels, failOn: 'error' } as const;
  try {
    const plain = await decodePlainGrey(bytes, options);
    if (plain) return plain;
    const { data, info } = await sharp(bytes, options)
      .flatten({ background: '#ffffff' })
      .greyscale()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1)
      throw new ImageDecodeError('unexpected channel count after greyscale conversion');
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    const message = err instanceof Error ? err.message : '';
    if (/pixel limit/i.test(message)) throw new ImageDecodeError(`image has more than ${maxPixels} pixels`);
    throw new ImageDecodeError('file is not a decodable PNG, JPEG, TIFF or BMP image');
  }
}

/**
 * The fast path for what microscopes mostly write: 8-bit grey, or 8-bit RGB whose three channels are
 * equal, without alpha or an embedded colour profile. Such pixels are already the grey the conversion
 * above would give (libvips maps (v, v, v) to v for every v), so they are taken as decoded: the colour
 * conversion cost about 8 of the 18 ms of a 1000×1000 RGB PNG. Anything else: undefined (the full path).
 */
async function decodePlainGrey(
  bytes: Buffer,
  options: { limitInputPixels: number; failOn: 'error' },
): Promise<GreyImage | undefined> {
  const meta = await sharp(bytes, options).metadata();
  if (meta.depth !== 'uchar' || meta.hasAlpha || meta.icc || (meta.channels !== 1 && meta.channels !== 3))
    return undefined;
  const { data, info } = await sharp(bytes, options).raw().toBuffer({ resolveWithObject: true });
  const pixels = info.width * info.height;
  if (info.channels === 1 && data.length === pixels)
    return {
      width: info.width,
      height: info.height,
      data: new Uint8Array(data.buffer, data.byteOffset, pixels),
    };
  if (info.channels !== 3 || data.length !== 3 * pixels) return undefined;
  const grey = new Uint8Array(pixels);
  for (let i = 0, j = 0; i < pixels; i++, j += 3) {
    const v = data[j];
    if (data[j + 1] !== v || data[j + 2] !== v) return undefined;
    grey[i] = v;
  }
  return { width: info.width, height: info.height, data: grey };
}

function decodeBmpToGrey(bytes: Buffer, maxPixels: number): GreyImage {
  let rgba: { width: number; height: number; data: Uint8ClampedArray };
  try {
    const header = imageSize(bytes);
    if (!header.width || !header.height) throw new ImageDecodeError('BMP header has no dimensions');
    if (header.width * header.height > maxPixels)
      throw new ImageDecodeError(`image has more than ${maxPixels} pixels`);
    rgba = decodeBmp(bytes);
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    throw new ImageDecodeError('file is not a decodable BMP image');
  }
  return { width: rgba.width, height: rgba.height, data: rgbaToGrey(rgba.data) };
}

/** Rec. 601 luma. The BMP alpha channel is ignored: 32-bit BMPs often leave it zero. */
function rgbaToGrey(rgba: Uint8ClampedArray): Uint8Array {
  const grey = new Uint8Array(rgba.length / 4);
  for (let i = 0, j = 0; j < grey.length; i += 4, j++) {
    grey[j] = (77 * rgba[i] + 150 * rgba[i + 1] + 29 * rgba[i + 2]) >> 8;
  }
  return grey;
}
