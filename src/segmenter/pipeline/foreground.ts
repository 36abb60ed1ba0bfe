import { type Mat, type MatScope, morphDisc } from './opencv';
import { type Geometry, type SegmentParams, refArea, refLength } from './params';

export interface Foreground {
  /** 255 where an object is, 0 elsewhere (working resolution). */
  mask: Mat;
  /** The threshold used on the flattened image. */
  threshold: number;
}

/**
 * Dark objects of the flattened image: Otsu's threshold (clamped, so that an empty field does not
 * split its noise), a closing that bridges the spheroid texture, small holes filled, and an opening
 * that strips what is thinner than `openRadius` (loose cells, bubble rims, fibres).
 */
export function segmentForeground(scope: MatScope, flat: Mat, g: Geometry, p: SegmentParams): Foreground {
  const { cv } = scope;
  const mask = scope.mat();
  const otsu = cv.threshold(flat, mask, 0, 255, cv.THRESH_BINARY_INV | cv.THRESH_OTSU);
  const threshold = Math.min(p.thresholdMax, Math.max(p.thresholdMin, otsu));
  if (threshold !== otsu) cv.threshold(flat, mask, threshold, 255, cv.THRESH_BINARY_INV);

  const close = refLength(g, p.closeRadius);
  morphDisc(scope, mask, mask, 'dilate', close);
  morphDisc(scope, mask, mask, 'erode', close);
  fillSmallHoles(scope, mask, refArea(g, p.holeFillArea));

  const open = refLength(g, p.openRadius);
  morphDisc(scope, mask, mask, 'erode', open);
  morphDisc(scope, mask, mask, 'dilate', open);
  return { mask, threshold };
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
