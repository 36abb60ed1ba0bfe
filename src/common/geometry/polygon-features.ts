/**
 * Shape features of one closed polygon (CONTRACT §3 "Editing a result", §8): the one computation
 * both deployables use — the reference segmenter for the outlines it finds and the api for the
 * outlines a person saves — so an edited copy of a model polygon gets the same numbers.
 *
 * Pure TypeScript: no OpenCV, no configuration, no Nest. The arithmetic follows OpenCV's
 * `contourArea`, `arcLength` and `moments` for contours (Green's theorem over the edges, in the same
 * order; the edge lengths in single precision as `arcLength` does), so for the integer contours the
 * segmenter produces the results are the ones OpenCV gave (test/unit/geometry).
 */
import type { MlFeatures } from '../contracts';

export type Point = readonly [number, number];

const round3 = (v: number): number => Math.round(v * 1000) / 1000;
const f32 = Math.fround;
/** OpenCV's threshold below which a contour's moments are all zero. */
const FLT_EPSILON = 1.1920928955078125e-7;

/** |shoelace| / 2 (OpenCV `contourArea`, not oriented). Holes are not subtracted. */
export function polygonArea(points: readonly Point[]): number {
  const n = points.length;
  if (n < 3) return 0;
  let a = 0;
  let [px, py] = points[n - 1];
  for (let i = 0; i < n; i++) {
    const [x, y] = points[i];
    a += px * y - py * x;
    px = x;
    py = y;
  }
  return Math.abs(a * 0.5);
}

/** Length of the closed outline (OpenCV `arcLength(…, true)`: each edge in single precision). */
export function polygonPerimeter(points: readonly Point[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let perimeter = 0;
  let [px, py] = points[n - 1];
  px = f32(px);
  py = f32(py);
  for (let i = 0; i < n; i++) {
    const x = f32(points[i][0]);
    const y = f32(points[i][1]);
    const dx = f32(x - px);
    const dy = f32(y - py);
    perimeter += f32(Math.sqrt(f32(f32(dx * dx) + f32(dy * dy))));
    px = x;
    py = y;
  }
  return perimeter;
}

/** Convex hull (Andrew's monotone chain), counter-clockwise in a y-up frame, without collinear points. */
export function convexHull(points: readonly Point[]): Point[] {
  const pts = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const cross = (o: Point, a: Point, b: Point) =>
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const lower: Point[] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2], lower[lower.length - 1], p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: Point[] = [];
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i];
    while (upper.length >= 2 && cross(upper[upper.length - 2], upper[upper.length - 1], p) <= 0) upper.pop();
    upper.push(p);
  }
  lower.pop();
  upper.pop();
  return lower.concat(upper);
}

/** Spatial moments up to the second order (OpenCV `moments` of a contour; m00 ≥ 0 whatever the winding). */
export interface PolygonMoments {
  m00: number;
  m10: number;
  m01: number;
  m20: number;
  m11: number;
  m02: number;
  mu20: number;
  mu11: number;
  mu02: number;
}

export function polygonMoments(points: readonly Point[]): PolygonMoments {
  let a00 = 0;
  let a10 = 0;
  let a01 = 0;
  let a20 = 0;
  let a11 = 0;
  let a02 = 0;
  const n = points.length;
  if (n >= 3) {
    let [xi1, yi1] = points[n - 1];
    for (let i = 0; i < n; i++) {
      const [xi, yi] = points[i];
      const dxy = xi1 * yi - xi * yi1;
      const xii1 = xi1 + xi;
      const yii1 = yi1 + yi;
      a00 += dxy;
      a10 += dxy * xii1;
      a01 += dxy * yii1;
      a20 += dxy * (xi1 * xii1 + xi * xi);
      a11 += dxy * (xi1 * (yii1 + yi1) + xi * (yii1 + yi));
      a02 += dxy * (yi1 * yii1 + yi * yi);
      xi1 = xi;
      yi1 = yi;
    }
  }
  if (!(Math.abs(a00) > FLT_EPSILON))
    return { m00: 0, m10: 0, m01: 0, m20: 0, m11: 0, m02: 0, mu20: 0, mu11: 0, mu02: 0 };
  const s = a00 > 0 ? 1 : -1;
  const m00 = a00 * (s * 0.5);
  const m10 = a10 * (s / 6);
  const m01 = a01 * (s / 6);
  const m20 = a20 * (s / 12);
  const m11 = a11 * (s / 24);
  const m02 = a02 * (s / 12);
  const inv = Math.abs(m00) > Number.EPSILON ? 1 / m00 : 0;
  const cx = m10 * inv;
  const cy = m01 * inv;
  return { m00, m10, m01, m20, m11, m02, mu20: m20 - m10 * cx, mu11: m11 - m10 * cy, mu02: m02 - m01 * cy };
}

/**
 * The ellipse with the same second moments as the region: full axis lengths (4√λ), eccentricity
 * √(1 − λmin/λmax), orientation of the major axis in degrees from +x towards +y (image rows), in (−90, 90].
 */
export function momentEllipse(m: Pick<PolygonMoments, 'm00' | 'mu20' | 'mu11' | 'mu02'>) {
  if (m.m00 <= 0) return { major: 0, minor: 0, eccentricity: 0, orientation: 0 };
  const a = m.mu20 / m.m00;
  const b = m.mu11 / m.m00;
  const c = m.mu02 / m.m00;
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

/**
 * Every feature of the wire format (CONTRACT §8), rounded to 3 decimals: area and perimeter of the
 * polygon (holes not subtracted), circularity 4π·area/perimeter², solidity area / convex hull area,
 * the moment ellipse and the centroid.
 */
export function polygonFeatures(points: readonly Point[]): MlFeatures {
  const area = polygonArea(points);
  const perimeter = polygonPerimeter(points);
  const hullArea = polygonArea(convexHull(points));
  const m = polygonMoments(points);
  const centroidX = m.m00 > 0 ? m.m10 / m.m00 : 0;
  const centroidY = m.m00 > 0 ? m.m01 / m.m00 : 0;
  const ellipse = momentEllipse(m);
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
