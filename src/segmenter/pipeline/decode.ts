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
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' })
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
