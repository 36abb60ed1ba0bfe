import type { Point } from '../../../src/common/geometry/polygon-features';

/** A small seeded PRNG (mulberry32), so every failing case can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Kind = 'convex' | 'concave' | 'thin' | 'many';

const rotate = (pts: Point[], deg: number, cx: number, cy: number): Point[] => {
  const r = (deg * Math.PI) / 180;
  return pts.map(([x, y]) => [
    cx + x * Math.cos(r) - y * Math.sin(r),
    cy + x * Math.sin(r) + y * Math.cos(r),
  ]);
};

/**
 * A simple (non self-intersecting) polygon: star-shaped around its centre (sorted angles), so the
 * even-odd rasterisation and the signed area agree. Coordinates are non-integer, anywhere in 0..1000.
 */
export function randomPolygon(kind: Kind, r: () => number): Point[] {
  const cx = 200 + r() * 600;
  const cy = 200 + r() * 600;
  const n =
    kind === 'many'
      ? 2000 + Math.floor(r() * 3000)
      : kind === 'thin'
        ? 4 + Math.floor(r() * 12)
        : 3 + Math.floor(r() * 40);
  const angles = Array.from({ length: n }, (_, k) => ((k + 0.2 + 0.6 * r()) / n) * 2 * Math.PI);
  const a = 30 + r() * 150;
  const b = kind === 'thin' ? a / (20 + r() * 30) : a * (0.3 + 0.7 * r());
  const pts: Point[] = angles.map((t) => {
    const radius = kind === 'concave' || kind === 'many' ? 0.35 + 0.65 * r() : 1;
    return [a * radius * Math.cos(t), b * radius * Math.sin(t)];
  });
  return rotate(pts, r() * 360 - 180, cx, cy);
}
