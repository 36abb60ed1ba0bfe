import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { readFile } from 'node:fs/promises';
import decodeBmp from 'decode-bmp';
import sharp, { type Sharp } from 'sharp';
import { uploadsConfig } from '../config/configuration';

/** The image an output is made from: its stored file and what the database says about it. */
export interface RenderSource {
  absPath: string;
  mimeType: string;
  width: number;
  height: number;
}

/** A polygon to draw, in the pixel space of `space` (the result's image size). */
export interface OverlayPolygon {
  type: 'external' | 'internal';
  points: [number, number][];
}

/** Outline colours: spheroids (external polygons) and their holes (internal ones). */
export const OVERLAY_COLOURS = { external: '#00e676', internal: '#ff1744' } as const;

/** Output size for a requested longest side: never larger than the image, aspect kept. */
export function fitInside(width: number, height: number, longest: number): { width: number; height: number } {
  const scale = Math.min(1, longest / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Outline width in output pixels: at least 2, a little more on large outputs so it stays visible. */
export const strokeWidth = (width: number, height: number): number => Math.max(2, Math.round(Math.max(width, height) / 400));

/**
 * Decodes stored images with sharp (BMP through decode-bmp, which libvips cannot read) and writes the
 * thumbnails (WebP) and overlays (PNG: the image with the result's outlines composited as an SVG).
 */
@Injectable()
export class ImageRenderer {
  constructor(@Inject(uploadsConfig.KEY) private readonly cfg: ConfigType<typeof uploadsConfig>) {}

  /** A sharp pipeline over the stored image (first page of a multi-page TIFF). */
  async open(src: RenderSource): Promise<Sharp> {
    if (src.mimeType === 'image/bmp') {
      if (src.width * src.height > this.cfg.maxPixels) throw new Error('image over the pixel limit');
      const bmp = decodeBmp(await readFile(src.absPath));
      const rgba = Buffer.from(bmp.data.buffer, bmp.data.byteOffset, bmp.data.byteLength);
      // The alpha channel of 32-bit BMPs is usually zero: drop it rather than make the image transparent.
      return sharp(rgba, { raw: { width: bmp.width, height: bmp.height, channels: 4 } }).removeAlpha();
    }
    return sharp(src.absPath, { limitInputPixels: this.cfg.maxPixels, failOn: 'none' });
  }

  /** WebP whose longest side is `longest` (or the image's, if smaller), aspect kept. */
  async thumbnail(src: RenderSource, longest: number, outPath: string): Promise<void> {
    const size = fitInside(src.width, src.height, longest);
    const img = await this.open(src);
    await img.resize({ ...size, fit: 'fill' }).webp({ quality: 82 }).toFile(outPath);
  }

  /**
   * PNG of the image (longest side at most `longest`) with every polygon outlined: externals and
   * internals in their two colours, lines {@link strokeWidth} px wide, drawn without anti-aliasing so
   * no pixel away from an outline changes. `space` is the size the polygon coordinates refer to.
   */
  async overlay(
    src: RenderSource,
    polygons: readonly OverlayPolygon[],
    space: { width: number; height: number },
    longest: number,
    outPath: string,
  ): Promise<void> {
    const size = fitInside(src.width, src.height, longest);
    const base = await (await this.open(src))
      .resize({ ...size, fit: 'fill' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const svg = overlaySvg(polygons, space, size);
    await sharp(base.data, { raw: { width: base.info.width, height: base.info.height, channels: base.info.channels } })
      .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
      .png()
      .toFile(outPath);
  }
}

/** The outlines as an SVG of the output's size (coordinates scaled from `space`). */
export function overlaySvg(
  polygons: readonly OverlayPolygon[],
  space: { width: number; height: number },
  out: { width: number; height: number },
): string {
  const sx = out.width / Math.max(1, space.width);
  const sy = out.height / Math.max(1, space.height);
  const stroke = strokeWidth(out.width, out.height);
  const paths: string[] = [];
  for (const p of polygons) {
    const pts = (p.points ?? []).filter((pt) => Array.isArray(pt) && Number.isFinite(pt[0]) && Number.isFinite(pt[1]));
    if (pts.length < 2) continue;
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${(x * sx).toFixed(2)} ${(y * sy).toFixed(2)}`).join('') + 'Z';
    const colour = p.type === 'internal' ? OVERLAY_COLOURS.internal : OVERLAY_COLOURS.external;
    paths.push(`<path stroke="${colour}" d="${d}"/>`);
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${out.width}" height="${out.height}" viewBox="0 0 ${out.width} ${out.height}">` +
    `<g fill="none" stroke-width="${stroke}" stroke-linejoin="round" stroke-linecap="round" shape-rendering="crispEdges">` +
    paths.join('') +
    '</g></svg>'
  );
}
