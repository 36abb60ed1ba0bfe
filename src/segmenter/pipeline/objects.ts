import type { LabelImage } from './split';
import { type Geometry, type SegmentParams, refArea } from './params';

export type ObjectKind = 'spheroid' | 'speck' | 'fibre' | 'faint' | 'bubble';

/** What the classifier knows of one region (working resolution). */
export interface RegionStats {
  id: number;
  area: number;
  /** Mean flattened grey over the region, over its core (distance > half its largest) and over the rest. */
  meanGrey: number;
  coreGrey: number;
  rimGrey: number;
  /** Radius of the largest inscribed disc (peak of the distance map), working pixels. */
  peakDistance: number;
  /** Major / minor axis of the equivalent ellipse. */
  elongation: number;
  box: { x: number; y: number; width: number; height: number };
}

interface Sums {
  area: number;
  grey: number;
  x: number;
  y: number;
  xx: number;
  yy: number;
  xy: number;
  maxDistance: number;
  coreArea: number;
  coreGrey: number;
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
}

const emptySums = (): Sums => ({
  area: 0,
  grey: 0,
  x: 0,
  y: 0,
  xx: 0,
  yy: 0,
  xy: 0,
  maxDistance: 0,
  coreArea: 0,
  coreGrey: 0,
  minX: Infinity,
  minY: Infinity,
  maxX: -Infinity,
  maxY: -Infinity,
});

/** One pass for area, grey, moments and bounding box, a second for the core/rim split. */
export function measureRegions(regions: LabelImage, flat: Uint8Array, distance: Float32Array): RegionStats[] {
  const { width, labels, count } = regions;
  const sums = Array.from({ length: count + 1 }, emptySums);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label === 0) continue;
    const s = sums[label];
    const x = i % width;
    const y = (i - x) / width;
    s.area++;
    s.grey += flat[i];
    s.x += x;
    s.y += y;
    s.xx += x * x;
    s.yy += y * y;
    s.xy += x * y;
    s.maxDistance = Math.max(s.maxDistance, distance[i]);
    s.minX = Math.min(s.minX, x);
    s.minY = Math.min(s.minY, y);
    s.maxX = Math.max(s.maxX, x);
    s.maxY = Math.max(s.maxY, y);
  }
  for (let i = 0; i < labels.length; i++) {
    const s = sums[labels[i]];
    if (labels[i] === 0 || distance[i] <= s.maxDistance / 2) continue;
    s.coreArea++;
    s.coreGrey += flat[i];
  }
  return sums.slice(1).map((s, index) => toStats(index + 1, s));
}

function toStats(id: number, s: Sums): RegionStats {
  const rimArea = s.area - s.coreArea;
  return {
    id,
    area: s.area,
    meanGrey: s.grey / s.area,
    coreGrey: s.coreArea > 0 ? s.coreGrey / s.coreArea : s.grey / s.area,
    rimGrey: rimArea > 0 ? (s.grey - s.coreGrey) / rimArea : s.grey / s.area,
    peakDistance: s.maxDistance,
    elongation: axisRatio(s),
    box: { x: s.minX, y: s.minY, width: s.maxX - s.minX + 1, height: s.maxY - s.minY + 1 },
  };
}

function axisRatio(s: Sums): number {
  const cx = s.x / s.area;
  const cy = s.y / s.area;
  const a = s.xx / s.area - cx * cx;
  const c = s.yy / s.area - cy * cy;
  const b = s.xy / s.area - cx * cy;
  const spread = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const major = (a + c) / 2 + spread;
  const minor = (a + c) / 2 - spread;
  return minor > 1e-9 ? Math.sqrt(major / minor) : Infinity;
}

/** Specks by area, fibres by elongation, faint clusters by mean grey, bubbles by a core lighter than the rim. */
export function classifyRegion(r: RegionStats, g: Geometry, p: SegmentParams, shapeCut = false): ObjectKind {
  if (r.area < refArea(g, p.minSpheroidArea)) return 'speck';
  if (r.elongation > p.maxElongation) return 'fibre';
  if (!shapeCut && r.coreGrey > r.rimGrey + p.bubbleCoreMargin) return 'bubble';
  if (r.meanGrey > p.maxMeanGrey) return 'faint';
  return 'spheroid';
}

/**
 * 0..1, how sure the segmenter is that the polygon is one whole spheroid:
 *   (0.6 × contrast + 0.4 × shape) × split,
 * contrast = how much darker than the background the object is, relative to the darkest threshold
 * (1 for a dense body, towards 0 for a faint one); shape = the mean of solidity and
 * circularity / 0.85 (1 for a compact round body); split = 1 for an object that was not cut from a
 * group or was cut at a deep neck, falling linearly to 0.6 as the neck widens to the split limit
 * (`splitDoubt` ≥ 1: separated by the disc rule alone, without a neck).
 */
export function spheroidConfidence(
  r: RegionStats,
  shape: { solidity: number; circularity: number },
  p: SegmentParams,
  splitDoubt = 0,
): number {
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const contrast = clamp((p.flatLevel - r.meanGrey) / (p.flatLevel - p.thresholdMin));
  const compact = (clamp(shape.solidity) + clamp(shape.circularity / 0.85)) / 2;
  const split = 1 - 0.4 * clamp((splitDoubt - 0.5) / 0.5);
  return Math.round((0.6 * contrast + 0.4 * compact) * split * 1000) / 1000;
}
