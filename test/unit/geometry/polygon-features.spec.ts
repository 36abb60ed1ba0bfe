import { type Point, convexHull, polygonFeatures } from '../../../src/common/geometry/polygon-features';
import { type Kind, randomPolygon, rng } from './polygon-generators';

/**
 * An independent computation: scanline rasterisation (even-odd, rows every `dy`, each row's spans
 * integrated exactly in x) and the moments of the filled pixels. Nothing here is shared with the module.
 */
function rasterMoments(points: readonly Point[], rows = points.length > 500 ? 800 : 4000) {
  const ys = points.map((p) => p[1]);
  const y0 = Math.min(...ys);
  const y1 = Math.max(...ys);
  const dy = (y1 - y0) / rows;
  let m00 = 0;
  let m10 = 0;
  let m01 = 0;
  let m20 = 0;
  let m11 = 0;
  let m02 = 0;
  for (let k = 0; k < rows; k++) {
    const y = y0 + (k + 0.5) * dy;
    const xs: number[] = [];
    for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
      const [xa, ya] = points[j];
      const [xb, yb] = points[i];
      if (ya <= y !== yb <= y) xs.push(xa + ((y - ya) / (yb - ya)) * (xb - xa));
    }
    xs.sort((p, q) => p - q);
    for (let s = 0; s + 1 < xs.length; s += 2) {
      const [a, b] = [xs[s], xs[s + 1]];
      const len = b - a;
      const sx = (b * b - a * a) / 2;
      const sxx = (b ** 3 - a ** 3) / 3;
      m00 += len * dy;
      m10 += sx * dy;
      m01 += y * len * dy;
      m20 += sxx * dy;
      m11 += y * sx * dy;
      m02 += y * y * len * dy + (len * dy ** 3) / 12; // the row's own spread in y
    }
  }
  const cx = m10 / m00;
  const cy = m01 / m00;
  const a = m20 / m00 - cx * cx;
  const b = m11 / m00 - cx * cy;
  const c = m02 / m00 - cy * cy;
  const l1 = (a + c) / 2 + Math.sqrt(((a - c) / 2) ** 2 + b * b);
  const l2 = (a + c) / 2 - Math.sqrt(((a - c) / 2) ** 2 + b * b);
  return {
    area: m00,
    cx,
    cy,
    major: 4 * Math.sqrt(l1),
    minor: 4 * Math.sqrt(Math.max(0, l2)),
    eccentricity: Math.sqrt(1 - Math.max(0, l2) / l1),
    orientationRad: 0.5 * Math.atan2(2 * b, a - c),
  };
}

/** Gift wrapping (Jarvis march): an independent convex hull for the solidity check. */
function jarvisHullArea(points: readonly Point[]): number {
  const start = points.reduce((best, p) =>
    p[0] < best[0] || (p[0] === best[0] && p[1] < best[1]) ? p : best,
  );
  const hull: Point[] = [];
  let p = start;
  do {
    hull.push(p);
    let q = points[0] === p ? points[1] : points[0];
    for (const r of points) {
      const cross = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]);
      if (
        cross < 0 ||
        (cross === 0 && Math.hypot(r[0] - p[0], r[1] - p[1]) > Math.hypot(q[0] - p[0], q[1] - p[1]))
      )
        q = r;
    }
    p = q;
  } while (p !== start && hull.length <= points.length);
  let s = 0;
  for (let i = 0; i < hull.length; i++) {
    const [x1, y1] = hull[i];
    const [x2, y2] = hull[(i + 1) % hull.length];
    s += x1 * y2 - x2 * y1;
  }
  return Math.abs(s) / 2;
}

/** Relative error, with the features' rounding to 3 decimals forgiven (a circularity of 0.002 cannot be closer). */
const relErr = (got: number, want: number) =>
  Math.abs(got - want) <= 0.0005 ? 0 : Math.abs(got - want) / Math.max(Math.abs(want), 1e-9);
const angleGap = (deg: number, rad: number) => {
  const d = Math.abs(((deg * Math.PI) / 180 - rad) % Math.PI);
  return Math.min(d, Math.PI - d);
};

describe('polygon features (src/common/geometry) against rasterised moments', () => {
  const KINDS: Kind[] = ['convex', 'concave', 'thin', 'many'];
  const CASES_PER_KIND = 40;

  it.each(KINDS)('%s polygons: every feature within 1 %% of the independent computation', (kind) => {
    for (let seed = 1; seed <= (kind === 'many' ? 12 : CASES_PER_KIND); seed++) {
      const r = rng(seed * 7919 + KINDS.indexOf(kind));
      const points = randomPolygon(kind, r);
      const f = polygonFeatures(points);
      const ref = rasterMoments(points);
      const where = `${kind} seed ${seed}`;
      const checks: Array<[string, number, number]> = [
        ['area', f.area, ref.area],
        ['centroid_x', f.centroid_x, ref.cx],
        ['centroid_y', f.centroid_y, ref.cy],
        ['major_axis', f.major_axis, ref.major],
        ['minor_axis', f.minor_axis, ref.minor],
        ['eccentricity', f.eccentricity, ref.eccentricity],
        ['solidity', f.solidity, ref.area / jarvisHullArea(points)],
      ];
      for (const [name, got, want] of checks) {
        if (relErr(got, want) > 0.01) throw new Error(`${where}: ${name} ${got} vs ${want}`);
      }
      expect(f.orientation).toBeGreaterThan(-90);
      expect(f.orientation).toBeLessThanOrEqual(90);
      // Orientation is only defined for an elongated shape: within 1 % of a half turn.
      if (ref.major > 1.05 * ref.minor && angleGap(f.orientation, ref.orientationRad) > 0.01 * Math.PI) {
        throw new Error(`${where}: orientation ${f.orientation} vs ${(ref.orientationRad * 180) / Math.PI}`);
      }
      const perimeter = points.reduce(
        (s, p, i) =>
          s +
          Math.hypot(p[0] - points[(i + 1) % points.length][0], p[1] - points[(i + 1) % points.length][1]),
        0,
      );
      if (relErr(f.perimeter, perimeter) > 0.01)
        throw new Error(`${where}: perimeter ${f.perimeter} vs ${perimeter}`);
      if (relErr(f.circularity, (4 * Math.PI * ref.area) / perimeter ** 2) > 0.01)
        throw new Error(`${where}: circularity ${f.circularity}`);
    }
  });

  it('is the same for either winding and any starting point', () => {
    const points = randomPolygon('concave', rng(42));
    const turned = [...points.slice(7), ...points.slice(0, 7)].reverse();
    const a = polygonFeatures(points);
    const b = polygonFeatures(turned);
    for (const k of Object.keys(a) as Array<keyof typeof a>) expect(b[k]).toBeCloseTo(a[k], 2);
  });

  it('gives the textbook values of known shapes', () => {
    const square: Point[] = [
      [10, 10],
      [110, 10],
      [110, 110],
      [10, 110],
    ];
    expect(polygonFeatures(square)).toMatchObject({
      area: 10000,
      perimeter: 400,
      solidity: 1,
      centroid_x: 60,
      centroid_y: 60,
      eccentricity: 0,
    });
    expect(polygonFeatures(square).circularity).toBeCloseTo(Math.PI / 4, 3);
    // A 200 × 20 bar along +x then turned 30° towards +y (image rows).
    const bar = (deg: number): Point[] =>
      square
        .map(([x, y]) => [(x - 60) * 2, (y - 60) / 5])
        .map(([x, y]) => {
          const t = (deg * Math.PI) / 180;
          return [500 + x * Math.cos(t) - y * Math.sin(t), 500 + x * Math.sin(t) + y * Math.cos(t)] as Point;
        });
    expect(polygonFeatures(bar(30)).orientation).toBeCloseTo(30, 1);
    expect(polygonFeatures(bar(90)).orientation).toBeCloseTo(90, 1);
    expect(polygonFeatures(bar(-60)).orientation).toBeCloseTo(-60, 1);
    // Full axis lengths: a bar of length L has the variance L²/12, i.e. 4√(L²/12) = 2L/√3.
    expect(polygonFeatures(bar(0)).major_axis).toBeCloseTo((2 * 200) / Math.sqrt(3), 1);
    expect(polygonFeatures(bar(0)).minor_axis).toBeCloseTo((2 * 20) / Math.sqrt(3), 1);
  });

  it('finds the convex hull of a concave outline', () => {
    const arrow: Point[] = [
      [0, 0],
      [10, 5],
      [0, 10],
      [3, 5],
    ];
    expect(convexHull(arrow)).toHaveLength(3);
    expect(polygonFeatures(arrow).solidity).toBeCloseTo(35 / 50, 3);
  });

  it('answers zeros, not NaN, for a degenerate outline', () => {
    const f = polygonFeatures([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    for (const v of Object.values(f)) expect(Number.isFinite(v)).toBe(true);
    expect(f.area).toBe(0);
  });
});
