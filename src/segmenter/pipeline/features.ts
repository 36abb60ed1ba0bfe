import type { MlFeatures } from '../../common/contracts';
import { type Point, polygonFeatures } from '../../common/geometry/polygon-features';
import type { Cv, Mat } from './opencv';

/**
 * Shape features of one closed contour (CV_32SC2 points), CONTRACT §8, computed by the shared
 * geometry module (src/common/geometry) so that the api computes the same numbers for an edited
 * polygon. `cv` is kept in the signature for the pipeline's callers; the computation needs no OpenCV.
 */
export function contourFeatures(_cv: Cv, contour: Mat): MlFeatures {
  const flat = contour.data32S;
  const points: Point[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) points.push([flat[i], flat[i + 1]]);
  return polygonFeatures(points);
}
