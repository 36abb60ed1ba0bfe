import { performance } from 'node:perf_hooks';
import type { MlPolygon, MlSegmentResults } from '../../common/contracts';
import { decodeToGrey } from './decode';
import { rethreshold, segmentForeground } from './foreground';
import type { GreyImage } from './grey-image';
import { classifyRegion, measureRegions, spheroidConfidence } from './objects';
import { type Cv, type Mat, type MatScope, copyF32, copyI32, copyU8, withMatScope } from './opencv';
import { DEFAULT_PARAMS, type Geometry, type SegmentParams, geometryOf, refArea, refLength } from './params';
import { toWirePolygons, traceRegion } from './polygons';
import { flattenIllumination } from './preprocess';
import { type LabelImage, type SplitResult, splitTouching } from './split';

/**
 * The classical segmentation of one greyscale brightfield image: flatten illumination, threshold,
 * clean the mask, threshold each object again at its own rim level (found after a first split, so a
 * pale spheroid next to a dark one gets its own), separate touching and overlapping spheroids, reject specks, fibres, bubbles and faint clusters,
 * and trace the spheroids as wire polygons (ids from 1, holes after their outline).
 */
export function segmentGrey(cv: Cv, image: GreyImage, params: SegmentParams = DEFAULT_PARAMS): MlPolygon[] {
  const g = geometryOf(image.width, image.height, params);
  return withMatScope(cv, (scope) => {
    const flat = flattenIllumination(scope, image, g, params);
    const first = segmentForeground(scope, flat, g, params);
    const flatPixels = copyU8(flat);
    const rough = labelComponents(scope, first.mask, g, refArea(g, params.minSpheroidArea));
    const roughDistance = distanceToBackground(scope, first.mask);
    const roughRegions = splitTouching(rough, roughDistance, {
      ...splitOptions(g, params),
      refineBoundaries: false,
    });
    const thresholds = objectThresholds(scope, roughRegions, flatPixels, roughDistance, g, params);
    const mask = rethreshold(scope, flat, thresholds, g, params);
    const components = labelComponents(scope, mask, g, refArea(g, params.minSpheroidArea));
    const distance = distanceToBackground(scope, mask);
    const regions = splitTouching(components, distance, {
      ...splitOptions(g, params),
      junctions: true,
      shapes: true,
    });
    return tracePolygons(scope, regions, flatPixels, distance, g, params);
  });
}

/** Decodes the file and segments it; `processing_time_ms` covers both. */
export async function segmentImageFile(
  cv: Cv,
  filePath: string,
  maxPixels: number,
): Promise<MlSegmentResults> {
  const started = performance.now();
  const image = await decodeToGrey(filePath, maxPixels);
  const polygons = segmentGrey(cv, image);
  return {
    image_width: image.width,
    image_height: image.height,
    processing_time_ms: Math.round(performance.now() - started),
    polygons,
  };
}

/** 8-connected components of the mask, without those smaller than `minArea` (specks). */
function labelComponents(scope: MatScope, mask: Mat, g: Geometry, minArea: number): LabelImage {
  const { cv } = scope;
  const labelsMat = scope.mat();
  const stats = scope.mat();
  const centroids = scope.mat();
  const total = cv.connectedComponentsWithStats(mask, labelsMat, stats, centroids, 8, cv.CV_32S);
  const statValues = copyI32(stats);
  const labels = copyI32(labelsMat);
  const renumber = new Int32Array(total);
  let count = 0;
  for (let label = 1; label < total; label++) {
    if (statValues[label * 5 + cv.CC_STAT_AREA] >= minArea) renumber[label] = ++count;
  }
  for (let i = 0; i < labels.length; i++) labels[i] = renumber[labels[i]];
  return { width: g.workWidth, height: g.workHeight, labels, count };
}

const splitOptions = (g: Geometry, params: SegmentParams) => ({
  minPeakRadius: refLength(g, params.minPeakRadius),
  neckRatio: params.neckRatio,
  minDepth: refLength(g, params.minNeckDepth),
  discApart: params.discApart,
});

/** Per object, the grey halfway between the background and the mean of its core (distance > half its largest), on its pixels. */
function objectThresholds(
  scope: MatScope,
  objects: LabelImage,
  flat: Uint8Array,
  distance: Float32Array,
  g: Geometry,
  params: SegmentParams,
): Mat {
  const { labels, count } = objects;
  const peak = new Float32Array(count + 1);
  for (let i = 0; i < labels.length; i++) if (distance[i] > peak[labels[i]]) peak[labels[i]] = distance[i];
  const sum = new Float64Array(count + 1);
  const n = new Float64Array(count + 1);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l === 0 || distance[i] <= peak[l] / 2) continue;
    sum[l] += flat[i];
    n[l]++;
  }
  const level = new Uint8Array(count + 1);
  for (let l = 1; l <= count; l++) {
    const core = n[l] > 0 ? sum[l] / n[l] : params.flatLevel;
    level[l] = Math.round(
      Math.min(params.thresholdMax, core + params.rethresholdFraction * (params.flatLevel - core)),
    );
  }
  const pixels = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) pixels[i] = level[labels[i]];
  const mat = scope.track(new scope.cv.Mat(g.workHeight, g.workWidth, scope.cv.CV_8UC1));
  mat.data.set(pixels);
  return mat;
}

function distanceToBackground(scope: MatScope, mask: Mat): Float32Array {
  const distance = scope.mat();
  scope.cv.distanceTransform(mask, distance, scope.cv.DIST_L2, 5);
  return copyF32(distance);
}

function tracePolygons(
  scope: MatScope,
  regions: SplitResult,
  flat: Uint8Array,
  distance: Float32Array,
  g: Geometry,
  params: SegmentParams,
): MlPolygon[] {
  const polygons: MlPolygon[] = [];
  const traceOptions = {
    epsilon: params.simplifyEpsilon,
    minHoleArea: refArea(g, params.holeFillArea) * g.upscale ** 2,
    smoothRadius: params.outlineOpenFraction,
  };
  for (const region of measureRegions(regions, flat, distance)) {
    if (classifyRegion(region, g, params, regions.shapeCut[region.id] === 1) !== 'spheroid') continue;
    const outline = traceRegion(scope, regions, region, g, traceOptions);
    if (!outline) continue;
    const confidence = (shape: { solidity: number; circularity: number }) =>
      spheroidConfidence(region, shape, params, regions.splitDoubt[region.id]);
    polygons.push(...toWirePolygons(scope, outline, polygons.length + 1, confidence));
  }
  return polygons;
}
