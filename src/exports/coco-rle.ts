/**
 * COCO masks as pycocotools computes them (its C `maskApi`): run-length encoding in column-major
 * order (down each column, left to right), counts alternating zeros and ones, starting with zeros.
 * Kept as runs/intervals throughout, never as a full bitmap, so memory follows the outline, not the
 * image size.
 */

/** Half-open runs `[start, end)` of ones in column-major pixel order, sorted and disjoint. */
export type Runs = Array<[number, number]>;

/**
 * pycocotools' `rleFrPoly` (maskApi.c), line for line: the polygon `[x1,y1,x2,y2,…]` rasterised on an
 * `h`×`w` grid exactly as `maskUtils.frPyObjects` does, as uncompressed RLE counts.
 */
export function rleFromPolygon(xy: readonly number[], h: number, w: number): number[] {
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  if (k === 0) return [h * w];
  const x: number[] = new Array<number>(k + 1);
  const y: number[] = new Array<number>(k + 1);
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[j * 2 + 1] + 0.5);
  y[k] = y[0];
  // upsample and get discrete points densely along the entire boundary
  const u: number[] = [];
  const v: number[] = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j];
    let xe = x[j + 1];
    let ys = y[j];
    let ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      let t = xs;
      xs = xe;
      xe = t;
      t = ys;
      ys = ye;
      ye = t;
    }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u.push(t + xs);
        v.push(Math.trunc(ys + s * t + 0.5));
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v.push(t + ys);
        u.push(Math.trunc(xs + s * t + 0.5));
      }
    }
  }
  // get points along the y-boundary and downsample
  const a: number[] = [];
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    a.push(Math.trunc(xd) * h + Math.trunc(yd));
  }
  // RLE from the y-boundary points
  a.push(h * w);
  a.sort((p, q) => p - q);
  let p = 0;
  for (let j = 0; j < a.length; j++) {
    const t = a[j];
    a[j] -= p;
    p = t;
  }
  const b: number[] = [a[0]];
  let j = 1;
  while (j < a.length) {
    if (a[j] > 0) b.push(a[j++]);
    else {
      j++;
      if (j < a.length) b[b.length - 1] += a[j++];
    }
  }
  return b;
}

/** Uncompressed RLE counts → runs of ones. */
export function countsToRuns(counts: readonly number[]): Runs {
  const runs: Runs = [];
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (i % 2 === 1 && c > 0) runs.push([pos, pos + c]);
    pos += c;
  }
  return runs;
}

/** Runs of ones → uncompressed RLE counts over `total` pixels (adjacent runs joined). */
export function runsToCounts(runs: Runs, total: number): number[] {
  const counts: number[] = [];
  let pos = 0;
  for (const [s, e] of runs) {
    if (e <= s) continue;
    if (counts.length > 0 && s === pos) counts[counts.length - 1] += e - s;
    else counts.push(s - pos, e - s);
    pos = e;
  }
  if (total > pos || counts.length === 0) counts.push(total - pos);
  return counts;
}

/** Union of several run lists. */
export function unionRuns(lists: readonly Runs[]): Runs {
  const all = lists.flat().sort((p, q) => p[0] - q[0]);
  const out: Runs = [];
  for (const [s, e] of all) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** `a` less `b` (both sorted, disjoint). */
export function subtractRuns(a: Runs, b: Runs): Runs {
  const out: Runs = [];
  let j = 0;
  for (const [s0, e] of a) {
    let s = s0;
    while (j < b.length && b[j][1] <= s) j++;
    let k = j;
    while (k < b.length && b[k][0] < e) {
      if (b[k][0] > s) out.push([s, b[k][0]]);
      s = Math.max(s, b[k][1]);
      if (s >= e) break;
      k++;
    }
    if (s < e) out.push([s, e]);
  }
  return out;
}

export const runsArea = (runs: Runs): number => runs.reduce((n, [s, e]) => n + (e - s), 0);

/** Area (pixels) of uncompressed RLE counts: what `maskUtils.area` returns. */
export const countsArea = (counts: readonly number[]): number =>
  counts.reduce((n, c, i) => (i % 2 === 1 ? n + c : n), 0);
