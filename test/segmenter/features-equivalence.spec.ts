import type { MlFeatures } from '../../src/common/contracts';
import { contourFeatures } from '../../src/segmenter/pipeline/features';
import { type Cv, type Mat, loadOpenCv } from '../../src/segmenter/pipeline/opencv';
import { type Kind, randomPolygon, rng } from '../unit/geometry/polygon-generators';

/**
 * The segmenter's features now come from src/common/geometry. This is the OpenCV computation they
 * replaced (kept here only as the reference): for the integer contours the pipeline produces, the
 * two must give the same numbers, so the segmenter's output is unchanged.
 */
const round3 = (v: number) => Math.round(v * 1000) / 1000;
function openCvFeatures(cv: Cv, contour: Mat): MlFeatures {
  const area = cv.contourArea(contour);
  const perimeter = cv.arcLength(contour, true);
  const hull = new cv.Mat();
  cv.convexHull(contour, hull, false, true);
  const hullArea = cv.contourArea(hull);
  hull.delete();
  const m = cv.moments(contour, false);
  const cx = m.m00 > 0 ? m.m10 / m.m00 : 0;
  const cy = m.m00 > 0 ? m.m01 / m.m00 : 0;
  let major = 0;
  let minor = 0;
  let eccentricity = 0;
  let orientation = 0;
  if (m.m00 > 0) {
    const a = m.mu20 / m.m00;
    const b = m.mu11 / m.m00;
    const c = m.mu02 / m.m00;
    const spread = Math.sqrt(((a - c) / 2) ** 2 + b * b);
    const high = (a + c) / 2 + spread;
    const low = Math.max(0, (a + c) / 2 - spread);
    orientation = (0.5 * Math.atan2(2 * b, a - c) * 180) / Math.PI;
    if (orientation <= -90) orientation += 180;
    major = 4 * Math.sqrt(high);
    minor = 4 * Math.sqrt(low);
    eccentricity = high > 0 ? Math.sqrt(1 - low / high) : 0;
  }
  return {
    area: round3(area),
    perimeter: round3(perimeter),
    circularity: perimeter > 0 ? round3((4 * Math.PI * area) / (perimeter * perimeter)) : 0,
    solidity: hullArea > 0 ? round3(area / hullArea) : 0,
    eccentricity: round3(eccentricity),
    major_axis: round3(major),
    minor_axis: round3(minor),
    orientation: round3(orientation),
    centroid_x: round3(cx),
    centroid_y: round3(cy),
  };
}

let cv: Cv;
beforeAll(async () => {
  ({ cv } = await loadOpenCv());
});

describe('segmenter features = the OpenCV computation they replaced', () => {
  it.each<Kind>(['convex', 'concave', 'thin', 'many'])('%s integer contours: identical features', (kind) => {
    for (let seed = 1; seed <= 60; seed++) {
      const points = randomPolygon(kind, rng(seed * 104729 + kind.length)).map(([x, y]) => [
        Math.round(x),
        Math.round(y),
      ]);
      const contour = cv.matFromArray(points.length, 1, cv.CV_32SC2, points.flat());
      try {
        const want = openCvFeatures(cv, contour);
        const got = contourFeatures(cv, contour);
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          throw new Error(`${kind} seed ${seed}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
        }
      } finally {
        contour.delete();
      }
    }
  });
});
