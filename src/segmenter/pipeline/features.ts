import type { MlFeatures } from '../../common/contracts';
import type { Cv, Mat } from './opencv';

const round3 = (v: number) => Math.round(v * 1000) / 1000;

/**
 * Shape features of one closed contour (CV_32SC2 points), CONTRACT §8:
 * circularity 4πA/P², solidity A / convex-hull area, and the ellipse with the same second moments:
 * major/minor axis are its full lengths (4√λ), eccentricity √(1 − λmin/λmax), orientation the angle
 * of the major axis in degrees from the +x axis towards +y (image rows), in (−90, 90].
 */
export function contourFeatures(cv: Cv, contour: Mat): MlFeatures {
  const area = cv.contourArea(contour);
  const perimeter = cv.arcLength(contour, true);
  const hull = new cv.Mat();
  let hullArea: number;
  try {
    cv.convexHull(contour, hull, false, true);
    hullArea = cv.contourArea(hull);
  } finally {
    hull.delete();
  }
  const m = cv.moments(contour, false);
  const centroidX = m.m00 > 0 ? m.m10 / m.m00 : 0;
  const centroidY = m.m00 > 0 ? m.m01 / m.m00 : 0;
  const ellipse = momentEllipse(m.mu20, m.mu11, m.mu02, m.m00);
  return {
    area: round3(area),
    perimeter: round3(perimeter),
    circularity: perimeter > 0 ? round3((4 * Math.PI * area) / (perimeter * perimeter)) : 0,
    solidity: hullArea > 0 ? round3(area / hullArea) : 0,
    eccentricity: round3(ellipse.eccentricity),
    major_axis: round3(ellipse.major),
    minor_axis: round3(ellipse.minor),
    orientation: round3(ellipse.orientation),
    centroid_x: round3(centroidX),
    centroid_y: round3(centroidY),
  };
}

function momentEllipse(mu20: number, mu11: number, mu02: number, m00: number) {
  if (m00 <= 0) return { major: 0, minor: 0, eccentricity: 0, orientation: 0 };
  const a = mu20 / m00;
  const b = mu11 / m00;
  const c = mu02 / m00;
  const spread = Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const high = (a + c) / 2 + spread;
  const low = Math.max(0, (a + c) / 2 - spread);
  let orientation = (0.5 * Math.atan2(2 * b, a - c) * 180) / Math.PI;
  if (orientation <= -90) orientation += 180;
  return {
    major: 4 * Math.sqrt(high),
    minor: 4 * Math.sqrt(low),
    eccentricity: high > 0 ? Math.sqrt(1 - low / high) : 0,
    orientation,
  };
}
