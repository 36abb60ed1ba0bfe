import { type MorphStep, morphBinary } from './binary-morph';
import { type Mat, type MatScope, copyU8, morphDisc } from './opencv';
import { type Geometry, type SegmentParams, refArea, refLength } from './params';

export interface Foreground {
  /** 255 where an object is, 0 elsewhere (working resolution). */
  mask: Mat;
  /** The threshold used on the flattened image. */
  threshold: number;
}

/** Dark objects of the flattened image: Otsu's threshold (clamped, so that an empty field does not split its noise), cleaned. */
export function segmentForeground(scope: MatScope, flat: Mat, g: Geometry, p: SegmentParams): Foreground {
  const { cv } = scope;
  const mask = scope.mat();
  const otsu = cv.threshold(flat, mask, 0, 255, cv.THRESH_BINARY_INV | cv.THRESH_OTSU);
  const threshold = Math.min(p.thresholdMax, Math.max(p.thresholdMin, otsu));
  if (threshold !== otsu) cv.threshold(flat, mask, threshold, 255, cv.THRESH_BINARY_INV);
  cleanMask(scope, mask, g, p);
  return { mask, threshold };
}

/**
 * Closing that bridges the spheroid texture, small holes filled, and an opening that strips what is
 * thinner than `openRadius` (loose cells, invasion-halo granules, bubble rims, fibres).
 */
export function cleanMask(scope: MatScope, mask: Mat, g: Geometry, p: SegmentParams): void {
  const close = refLength(g, p.closeRadius);
  const open = refLength(g, p.openRadius);
  if (close > 0)
    morphMask(mask, g, [
      { op: 'dilate', radius: close },
      { op: 'erode', radius: close },
    ]);
  fillSmallHoles(scope, mask, refArea(g, p.holeFillArea));
  morphMask(mask, g, [
    { op: 'erode', radius: open },
    { op: 'dilate', radius: open },
  ]);
}

function morphMask(mask: Mat, g: Geometry, steps: MorphStep[]): void {
  mask.data.set(morphBinary(copyU8(mask), g.workWidth, g.workHeight, steps));
}

/**
 * Each object again at its own threshold: at `rethresholdFraction` of the way from the mean grey
 * of its core to the background (`flatLevel`), the 50 % point of its rim whatever its darkness. A global threshold that
 * suits a dark spheroid takes in the grey granular halo of invading cells around it and the blur of
 * its edge; one that suits a pale spheroid misses it. `thresholds` holds each object's threshold
 * on its own pixels (0 elsewhere); it is spread a few pixels outwards so the rim can grow back.
 */
export function rethreshold(scope: MatScope, flat: Mat, thresholds: Mat, g: Geometry, p: SegmentParams): Mat {
  const { cv } = scope;
  morphDisc(scope, thresholds, thresholds, 'dilate', refLength(g, p.rethresholdReach));
  const mask = scope.mat();
  cv.compare(flat, thresholds, mask, cv.CMP_LT);
  cleanMask(scope, mask, g, p);
  return mask;
}

/** Fills the holes (inner contours) whose area is at most `maxArea`; larger holes, such as a bubble's light interior, stay. */
function fillSmallHoles(scope: MatScope, mask: Mat, maxArea: number): void {
  const { cv } = scope;
  const contours = scope.track(new cv.MatVector());
  const hierarchy = scope.mat();
  cv.findContours(mask, contours, hierarchy, cv.RETR_CCOMP, cv.CHAIN_APPROX_SIMPLE);
  const links = hierarchy.data32S.slice();
  const small = scope.track(new cv.MatVector());
  for (let i = 0; i < contours.size(); i++) {
    const isHole = links[4 * i + 3] >= 0;
    const contour = contours.get(i);
    if (isHole && cv.contourArea(contour) <= maxArea) small.push_back(contour);
    contour.delete();
  }
  if (small.size() > 0) cv.drawContours(mask, small, -1, new cv.Scalar(255), cv.FILLED);
}
