import type { GreyImage } from './grey-image';
import { type Mat, type MatScope, copyU8, morphDisc } from './opencv';
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

/**
 * The background on a coarse grid: closed by a disc of `radius` cells, so that dark objects up to that
 * size are replaced by their surroundings. The disc cannot reach beyond the image, and where the
 * illumination falls towards a border (vignetting, a tilt) the closing there only sees the brighter
 * inside: a dark corner's background would come out too bright and the corner read as an object. So the
 * grid is padded by the radius with a smooth illumination surface fitted to the background cells
 * (`fitIllumination`), continued beyond the border: a falling slope keeps falling, and the closing of
 * a smooth dome is the dome itself. A body cut by the border is no background cell and does not bend the
 * surface, so the padding beyond it stays at the background level and the body remains an object.
 */
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
  const closed = scope.mat();
  closeDisc(scope, coarse, closed, radius);
  const cells = { width: grid.width, height: grid.height, values: copyU8(coarse) };
  const surface = fitIllumination(cells, copyU8(closed), p.backgroundMargin);
  if (surface) {
    const padded = scope.mat();
    cv.copyMakeBorder(coarse, padded, radius, radius, radius, radius, cv.BORDER_CONSTANT, new cv.Scalar(0));
    const values = padded.data;
    const width = grid.width + 2 * radius;
    for (let y = 0; y < grid.height + 2 * radius; y++)
      for (let x = 0; x < width; x++) {
        const inside = x >= radius && x < radius + grid.width && y >= radius && y < radius + grid.height;
        if (!inside) values[y * width + x] = clampGrey(surface(x - radius, y - radius));
      }
    closeDisc(scope, padded, padded, radius);
    // A view of the padded grid (freed with the scope: it holds a reference to the grid's pixels).
    scope.track(padded.roi(new cv.Rect(radius, radius, grid.width, grid.height))).copyTo(closed);
  }
  cv.GaussianBlur(closed, closed, new cv.Size(0, 0), radius / 2, radius / 2, cv.BORDER_REPLICATE);

  const background = scope.mat();
  cv.resize(closed, background, new cv.Size(g.workWidth, g.workHeight), 0, 0, cv.INTER_LINEAR);
  return background;
}

function closeDisc(scope: MatScope, src: Mat, dst: Mat, radius: number): void {
  morphDisc(scope, src, dst, 'dilate', radius);
  morphDisc(scope, dst, dst, 'erode', radius);
}

const clampGrey = (v: number) => Math.min(255, Math.max(0, Math.round(v)));

/** A grid of cells (row-major grey values). */
export interface Cells {
  width: number;
  height: number;
  values: Uint8Array;
}

const FIT_ROUNDS = 4;
/** Fewer background cells than this share of the grid: no surface (too little to fit it on). */
const MIN_BACKGROUND_SHARE = 0.25;

/**
 * The illumination as a smooth surface: a quadratic polynomial in x and y (a tilt times a vignetting
 * dome is close to one) fitted by least squares to the background cells, as a function of cell
 * coordinates (defined beyond the grid too). Background cells are those at most `margin` (a fraction)
 * darker than the current estimate: first the closing `closed`, then the surface itself, refitted a few
 * times so that cells of a dark corner that the closing overestimated come back in. Objects are far
 * darker than the margin and never count. Undefined when too few cells are background.
 */
export function fitIllumination(
  cells: Cells,
  closed: Uint8Array,
  margin: number,
): ((x: number, y: number) => number) | undefined {
  const { width, height, values } = cells;
  const sx = 2 / Math.max(1, width - 1);
  const sy = 2 / Math.max(1, height - 1);
  const polynomial = (c: number[]) => (x: number, y: number) => {
    const u = x * sx - 1;
    const v = y * sy - 1;
    return c[0] + c[1] * u + c[2] * v + c[3] * u * u + c[4] * u * v + c[5] * v * v;
  };
  const estimate = Float64Array.from(closed);
  let surface: ((x: number, y: number) => number) | undefined;
  for (let round = 0; round < FIT_ROUNDS; round++) {
    // The normal equations' sums, the terms being 1, u, v, u², uv, v².
    const sum = new Float64Array(N_SUMS);
    let count = 0;
    for (let y = 0, cell = 0; y < height; y++) {
      const v = y * sy - 1;
      for (let x = 0; x < width; x++, cell++) {
        const value = values[cell];
        if (value < (1 - margin) * estimate[cell]) continue;
        count++;
        accumulate(sum, x * sx - 1, v, value);
      }
    }
    if (count < MIN_BACKGROUND_SHARE * width * height) return undefined;
    const c = solve(normalEquations(sum));
    if (!c) return undefined;
    surface = polynomial(c);
    for (let y = 0, cell = 0; y < height; y++)
      for (let x = 0; x < width; x++, cell++) estimate[cell] = surface(x, y);
  }
  return surface;
}

const TERMS = 6;
/** The upper triangle of the terms' products (21), then the terms times the value (6). */
const N_SUMS = (TERMS * (TERMS + 1)) / 2 + TERMS;

function accumulate(sum: Float64Array, u: number, v: number, value: number): void {
  const t0 = 1;
  const t1 = u;
  const t2 = v;
  const t3 = u * u;
  const t4 = u * v;
  const t5 = v * v;
  const t = [t0, t1, t2, t3, t4, t5];
  let k = 0;
  for (let i = 0; i < TERMS; i++) {
    const ti = t[i];
    for (let j = i; j < TERMS; j++) sum[k++] += ti * t[j];
    sum[k++] += ti * value;
  }
}

/** The augmented symmetric system from `accumulate`'s sums. */
function normalEquations(sum: Float64Array): Float64Array[] {
  const rows = Array.from({ length: TERMS }, () => new Float64Array(TERMS + 1));
  let k = 0;
  for (let i = 0; i < TERMS; i++) {
    for (let j = i; j < TERMS; j++) rows[i][j] = rows[j][i] = sum[k++];
    rows[i][TERMS] = sum[k++];
  }
  return rows;
}

/** Gaussian elimination with partial pivoting on an augmented n × (n + 1) system; undefined if singular. */
function solve(rows: Float64Array[]): number[] | undefined {
  const n = rows.length;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(rows[r][col]) > Math.abs(rows[pivot][col])) pivot = r;
    if (Math.abs(rows[pivot][col]) < 1e-9) return undefined;
    [rows[col], rows[pivot]] = [rows[pivot], rows[col]];
    for (let r = col + 1; r < n; r++) {
      const f = rows[r][col] / rows[col][col];
      for (let k = col; k <= n; k++) rows[r][k] -= f * rows[col][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = rows[r][n];
    for (let k = r + 1; k < n; k++) s -= rows[r][k] * x[k];
    x[r] = s / rows[r][r];
  }
  return x;
}
