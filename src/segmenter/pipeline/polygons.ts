import type { MlPolygon } from '../../common/contracts';
import { contourFeatures } from './features';
import type { RegionStats } from './objects';
import { morphBinary } from './binary-morph';
import { type Mat, type MatScope } from './opencv';
import type { Geometry } from './params';
import type { LabelImage } from './split';

/** A region's outline and holes, in pixels of the input image. */
export interface RegionOutline {
  external: Mat;
  holes: Mat[];
}

const PAD = 2;

/**
 * Traces one region at the input resolution: its working-resolution mask is cropped, enlarged with
 * bilinear interpolation (a smooth outline rather than a staircase of working pixels), thresholded,
 * and its contours taken with their holes (RETR_CCOMP), simplified by approxPolyDP. Only the
 * largest outline is kept, and only holes of at least `minHoleArea` input pixels.
 */
export function traceRegion(
  scope: MatScope,
  regions: LabelImage,
  region: RegionStats,
  g: Geometry,
  opts: { epsilon: number; minHoleArea: number; smoothRadius: number },
): RegionOutline | undefined {
  const { cv } = scope;
  const crop = cropMask(scope, regions, region, Math.round(opts.smoothRadius * region.peakDistance));
  const large = scope.mat();
  cv.resize(crop.mat, large, new cv.Size(0, 0), g.upscale, g.upscale, cv.INTER_LINEAR);
  cv.threshold(large, large, 127, 255, cv.THRESH_BINARY);

  const contours = scope.track(new cv.MatVector());
  const hierarchy = scope.mat();
  const offset = new cv.Point(Math.round(crop.x * g.upscale), Math.round(crop.y * g.upscale));
  cv.findContours(large, contours, hierarchy, cv.RETR_CCOMP, cv.CHAIN_APPROX_NONE, offset);
  const links = hierarchy.data32S.slice();

  const outer = largestExternal(scope, contours, links);
  if (outer < 0) return undefined;
  const holes: Mat[] = [];
  for (let child = links[4 * outer + 2]; child >= 0; child = links[4 * child]) {
    const hole = scope.track(contours.get(child));
    if (cv.contourArea(hole) >= opts.minHoleArea) holes.push(simplify(scope, hole, opts.epsilon));
  }
  return { external: simplify(scope, scope.track(contours.get(outer)), opts.epsilon), holes };
}

/**
 * The region's mask around its bounding box. With `openRadius` > 0 the region is first opened by a
 * disc of that radius (a fraction of its own inscribed radius): clumps of halo or loose cells stuck to
 * its rim go, a small spheroid keeps its shape. The opening runs on all objects' pixels (and what
 * lies beyond the image border), so neither the cut against a neighbour nor the border is eaten into.
 */
function cropMask(
  scope: MatScope,
  regions: LabelImage,
  region: RegionStats,
  openRadius: number,
): { mat: Mat; x: number; y: number } {
  const { cv } = scope;
  const pad = PAD + openRadius;
  const x = region.box.x - pad;
  const y = region.box.y - pad;
  const width = region.box.width + 2 * pad;
  const height = region.box.height + 2 * pad;
  const own = new Uint8Array(width * height);
  // Outside the image counts as object for the opening: a spheroid cut by the border keeps its corners.
  const any = new Uint8Array(width * height).fill(255);
  for (let row = Math.max(0, y); row < Math.min(regions.height, y + height); row++) {
    for (let col = Math.max(0, x); col < Math.min(regions.width, x + width); col++) {
      const label = regions.labels[row * regions.width + col];
      const k = (row - y) * width + (col - x);
      if (label === region.id) own[k] = 255;
      if (label === 0) any[k] = 0;
    }
  }
  const mat = scope.track(new cv.Mat(height, width, cv.CV_8UC1));
  if (openRadius <= 0) {
    mat.data.set(own);
    return { mat, x, y };
  }
  const opened = morphBinary(any, width, height, [
    { op: 'erode', radius: openRadius },
    { op: 'dilate', radius: openRadius },
  ]);
  for (let k = 0; k < own.length; k++) own[k] &= opened[k];
  mat.data.set(own);
  return { mat, x, y };
}

function largestExternal(
  scope: MatScope,
  contours: InstanceType<MatScope['cv']['MatVector']>,
  links: Int32Array,
): number {
  let best = -1;
  let bestArea = -1;
  for (let i = 0; i < contours.size(); i++) {
    if (links[4 * i + 3] >= 0) continue;
    const contour = scope.track(contours.get(i));
    const area = scope.cv.contourArea(contour);
    if (area > bestArea) {
      best = i;
      bestArea = area;
    }
  }
  return best;
}

function simplify(scope: MatScope, contour: Mat, epsilon: number): Mat {
  const simplified = scope.mat();
  scope.cv.approxPolyDP(contour, simplified, epsilon, true);
  return simplified;
}

export function pointsOf(contour: Mat): [number, number][] {
  const flat = contour.data32S.slice();
  const points: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) points.push([flat[i], flat[i + 1]]);
  return points;
}

/** The wire polygons of one region: the external outline, then its holes pointing at it. */
export function toWirePolygons(
  scope: MatScope,
  outline: RegionOutline,
  firstId: number,
  confidence: (shape: { solidity: number; circularity: number }) => number,
): MlPolygon[] {
  const features = contourFeatures(scope.cv, outline.external);
  const external: MlPolygon = {
    id: firstId,
    type: 'external',
    parent_id: null,
    points: pointsOf(outline.external),
    class: 'spheroid',
    confidence: confidence(features),
    features,
  };
  const internals = outline.holes.map((hole, index): MlPolygon => ({
    id: firstId + 1 + index,
    type: 'internal',
    parent_id: firstId,
    points: pointsOf(hole),
    class: 'spheroid',
    confidence: external.confidence,
    features: contourFeatures(scope.cv, hole),
  }));
  return [external, ...internals];
}
