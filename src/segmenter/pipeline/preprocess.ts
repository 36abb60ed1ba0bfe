import type { GreyImage } from './grey-image';
import { type Mat, type MatScope, morphDisc } from './opencv';
import { type Geometry, type SegmentParams, refLength } from './params';

/**
 * Brings the image to the working resolution, removes uneven illumination and smooths noise.
 * Background: the image shrunk to a coarse grid, closed (dark objects up to `backgroundRadius` are
 * replaced by their surroundings), blurred and enlarged again. The image is divided by it, so the
 * background becomes `flatLevel` everywhere and objects keep their relative darkness.
 */
export function flattenIllumination(scope: MatScope, image: GreyImage, g: Geometry, p: SegmentParams): Mat {
  const { cv } = scope;
  const input = scope.track(new cv.Mat(image.height, image.width, cv.CV_8UC1));
  input.data.set(image.data);

  const work = scope.mat();
  cv.resize(input, work, new cv.Size(g.workWidth, g.workHeight), 0, 0, cv.INTER_AREA);

  const background = estimateBackground(scope, work, g, p);
  const flat = scope.mat();
  cv.divide(work, background, flat, p.flatLevel);
  cv.GaussianBlur(flat, flat, new cv.Size(5, 5), 0, 0, cv.BORDER_REPLICATE);
  return flat;
}

function estimateBackground(scope: MatScope, work: Mat, g: Geometry, p: SegmentParams): Mat {
  const { cv } = scope;
  const cell = refLength(g, p.backgroundCell);
  const grid = new cv.Size(
    Math.max(1, Math.round(g.workWidth / cell)),
    Math.max(1, Math.round(g.workHeight / cell)),
  );
  const radius = Math.max(1, Math.round(p.backgroundRadius / p.backgroundCell));

  const coarse = scope.mat();
  cv.resize(work, coarse, grid, 0, 0, cv.INTER_AREA);
  morphDisc(scope, coarse, coarse, 'dilate', radius);
  morphDisc(scope, coarse, coarse, 'erode', radius);
  cv.GaussianBlur(coarse, coarse, new cv.Size(0, 0), radius / 2, radius / 2, cv.BORDER_REPLICATE);

  const background = scope.mat();
  cv.resize(coarse, background, new cv.Size(g.workWidth, g.workHeight), 0, 0, cv.INTER_LINEAR);
  return background;
}
