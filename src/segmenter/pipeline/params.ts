/**
 * Tuning of the classical pipeline. Lengths are in reference pixels: the image's longer side counts
 * as 1000 reference pixels whatever its resolution (a fixed field of view), areas in reference
 * pixels². Intensities are on the flattened scale, where the background is `flatLevel`.
 */
export interface SegmentParams {
  /** The longer side of the working image, in pixels (the pipeline runs at this resolution). */
  workLongSide: number;
  /** Background grid cell, and the radius of the largest dark object the background estimate ignores. */
  backgroundCell: number;
  backgroundRadius: number;
  /** Background cells for the illumination surface: at most this fraction darker than the estimate. */
  backgroundMargin: number;
  /** Grey level the background is mapped to by flattening (image / background × flatLevel). */
  flatLevel: number;
  /** Otsu's threshold on the flattened image is clamped to this range. */
  thresholdMin: number;
  thresholdMax: number;
  /** Each object is thresholded again halfway between the background and its core grey, up to this far out. */
  rethresholdReach: number;
  /** Where between core grey (0) and background (1) that threshold lies. */
  rethresholdFraction: number;
  /** Closing radius that bridges the texture of a spheroid; holes up to `holeFillArea` are filled. */
  closeRadius: number;
  holeFillArea: number;
  /** Opening radius that strips loose cells, bubble rims, fibres and rough rims. */
  openRadius: number;
  /** Objects smaller than this are specks. */
  minSpheroidArea: number;
  /** Equivalent-ellipse axis ratio above which an object is a fibre. */
  maxElongation: number;
  /** Objects whose mean flattened grey is above this are too faint (cell clusters, bubbles). */
  maxMeanGrey: number;
  /** A core lighter than its rim by this much is a bubble. */
  bubbleCoreMargin: number;
  /** Seeds of touching spheroids: distance peaks of at least this radius, split where the neck is narrower than `neckRatio` × the smaller radius. */
  minPeakRadius: number;
  neckRatio: number;
  /** The smaller of two split spheroids rises at least this much above their neck (in the distance map). */
  minNeckDepth: number;
  /** See SplitOptions.discApart. */
  discApart: number;
  /** Each spheroid's outline is opened by a disc of this fraction of its inscribed radius (0 = off). */
  outlineOpenFraction: number;
  /** approxPolyDP epsilon, in pixels of the input image. */
  simplifyEpsilon: number;
}

export const DEFAULT_PARAMS: Readonly<SegmentParams> = Object.freeze({
  workLongSide: 500,
  backgroundCell: 16,
  backgroundRadius: 240,
  backgroundMargin: 0.12,
  flatLevel: 200,
  thresholdMin: 60,
  thresholdMax: 160,
  rethresholdReach: 6,
  rethresholdFraction: 0.45,
  closeRadius: 0,
  holeFillArea: 400,
  openRadius: 12,
  minSpheroidArea: 2000,
  maxElongation: 3.5,
  maxMeanGrey: 130,
  bubbleCoreMargin: 8,
  minPeakRadius: 24,
  neckRatio: 0.8,
  minNeckDepth: 6,
  discApart: 0.3,
  outlineOpenFraction: 0.3,
  simplifyEpsilon: 1,
});

/** Converts reference lengths to pixels of the working image. */
export interface Geometry {
  /** Input size and working size. */
  width: number;
  height: number;
  workWidth: number;
  workHeight: number;
  /** Input pixels per working pixel (≥ 1). */
  upscale: number;
  /** Working pixels per reference pixel. */
  perRef: number;
}

export function geometryOf(width: number, height: number, params: SegmentParams): Geometry {
  const longSide = Math.max(width, height);
  const workScale = Math.min(1, params.workLongSide / longSide);
  const workWidth = Math.max(1, Math.round(width * workScale));
  const workHeight = Math.max(1, Math.round(height * workScale));
  return {
    width,
    height,
    workWidth,
    workHeight,
    upscale: width / workWidth,
    perRef: (longSide * workScale) / 1000,
  };
}

/** A reference length in working pixels, at least 1 unless the reference length is 0. */
export const refLength = (g: Geometry, ref: number): number =>
  ref <= 0 ? 0 : Math.max(1, Math.round(ref * g.perRef));
export const refArea = (g: Geometry, ref: number): number => ref * g.perRef * g.perRef;
