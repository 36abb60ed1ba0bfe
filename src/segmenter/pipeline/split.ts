/**
 * Separation of touching and overlapping spheroids: a watershed on the distance transform of the
 * object mask, with the markers chosen by a neck test instead of being given in advance.
 *
 * Pixels are flooded from the highest distance down (one basin per regional maximum). Where two
 * basins first meet, at a saddle of height `s`, they are kept apart only if the mask narrows there
 * to a real neck: both peaks (the radii of their largest inscribed discs) are at least
 * `minPeakRadius`, the saddle is lower than `neckRatio` × the smaller peak, and the smaller peak
 * rises above the saddle by at least `minDepth`. Otherwise the two basins merge (the bumps of one
 * rough or elongated spheroid meet at a saddle nearly as high as their peaks). Deciding each meeting
 * where it happens makes the split work for groups of any size: every pair of neighbouring spheroids
 * is judged by its own neck. Every later pixel joins the basin of its highest already-flooded
 * neighbour (steepest ascent), so the boundary between two spheroids runs through the neck.
 */
export interface LabelImage {
  width: number;
  height: number;
  /** 0 = background, 1..count = object. */
  labels: Int32Array;
  count: number;
}

export interface SplitOptions {
  /** Smallest radius of a spheroid's largest inscribed disc, in working pixels. */
  minPeakRadius: number;
  /** A saddle at least this fraction of the smaller peak is no neck. */
  neckRatio: number;
  /** The smaller peak must rise this many working pixels above the saddle. */
  minDepth: number;
  /**
   * Two basins without a neck are still two spheroids when their peaks are further apart than the
   * larger peak plus this fraction of the smaller: the smaller inscribed disc then lies mostly
   * outside the larger (one round or elongated body never has such a pair of maxima).
   */
  discApart: number;
  /** Re-judge the peaks absorbed by a junction maximum (see junctionMarkers). */
  junctions?: boolean;
  /** Re-judge the peaks absorbed without a neck by how much better several ellipses fit the region than one (see shapeMarkers). */
  shapes?: boolean;
  /**
   * Move the boundaries to where the regions' ellipses meet (reassignByEllipses; default true). The
   * pipeline's first, rough split only feeds each object's threshold and skips it: same figures on the
   * tuning split, about 12 % less CPU per image.
   */
  refineBoundaries?: boolean;
}

export interface SplitResult extends LabelImage {
  /**
   * Per region (index = label): the highest saddle-to-peak ratio with any neighbour it was split
   * from, relative to `neckRatio` (0 = not split or split at a deep neck, near 1 = a doubtful split).
   */
  splitDoubt: Float32Array;
  /**
   * Per region: 1 when it was cut out of a region by its shape (shapeMarkers). Its core and rim by the
   * distance map are not its own (the deepest pixels may lie in the contact), so the bubble test
   * (core lighter than rim) does not apply; a bubble's ring never has a peak large enough to be a marker.
   */
  shapeCut: Uint8Array;
}

/** Distance levels per working pixel. */
const LEVELS_PER_PIXEL = 8;

export function splitTouching(
  components: LabelImage,
  distance: Float32Array,
  options: SplitOptions,
): SplitResult {
  const { width, height, labels } = components;
  const n = width * height;
  const order = pixelsByDescendingDistance(labels, distance);

  const basin = new Int32Array(n).fill(-1);
  // Union-find over basins; a basin is named by the pixel index of its peak.
  const parent = new Int32Array(n).fill(-1);
  const peakOf = new Float32Array(n);
  const find = (b: number): number => {
    let root = b;
    while (parent[root] !== root) root = parent[root];
    while (parent[b] !== root) {
      const next = parent[b];
      parent[b] = root;
      b = next;
    }
    return root;
  };
  // Saddles kept as splits: [rootA, rootB, ratio to the smaller peak].
  const splits: [number, number, number][] = [];

  const { minPeakRadius, neckRatio, minDepth, discApart } = options;
  const decided = new Map<number, number>();
  let lastA = -1;
  let lastB = -1;
  let lastRatio = -1;
  /**
   * Where basins a and b first meet at height `saddle`: their neck is the lower of the saddle and
   * the narrowest point of the straight segment between their peaks (which catches a body pressed
   * flat against a larger one, where the saddle is hardly below the smaller peak). Returns the
   * neck-to-smaller-peak ratio when they are two spheroids, −1 when they are one.
   */
  const neckBetween = (a: number, b: number, saddle: number): number => {
    const low = Math.min(peakOf[a], peakOf[b]);
    const high = Math.max(peakOf[a], peakOf[b]);
    if (low < minPeakRadius) return -1;
    const apart = Math.hypot((a % width) - (b % width), Math.floor(a / width) - Math.floor(b / width));
    if (apart <= high) return -1;
    const neck = Math.min(saddle, minAlongSegment(a, b, width, distance));
    if (neck < neckRatio * low && low - neck >= minDepth) return neck / low;
    // No neck, but the smaller inscribed disc lies mostly outside the larger: a body pressed flat
    // against another, or wedged between two (its contact is as wide as itself).
    return apart > high + discApart * low ? neck / low : -1;
  };
  // Per basin root: the peaks of the basins merged into it (candidate markers for the re-split).
  const absorbed = new Map<number, number[]>();
  // Per basin root: the highest saddle at which it met a basin it was kept apart from.
  const contact = new Float32Array(n);
  const absorb = (keep: number, drop: number) => {
    if (peakOf[drop] < minPeakRadius) return;
    const into = absorbed.get(keep) ?? [];
    into.push(drop);
    const more = absorbed.get(drop);
    if (more) {
      into.push(...more);
      absorbed.delete(drop);
    }
    absorbed.set(keep, into);
  };
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    const d = distance[i];
    const x = i % width;
    const y = (i - x) / width;
    let best = -1;
    let bestDistance = -1;
    for (let dy = -1; dy <= 1; dy++) {
      const yy = y + dy;
      if (yy < 0 || yy >= height) continue;
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx;
        if ((dx === 0 && dy === 0) || xx < 0 || xx >= width) continue;
        const j = yy * width + xx;
        if (basin[j] < 0) continue;
        // The same stored basin as `best` has the same root: nothing to decide (the usual case).
        if (best >= 0 && basin[j] !== best) {
          const rj = find(basin[j]);
          const rb = find(best);
          if (rb !== rj) {
            // Along a boundary the same pair meets pixel after pixel: remember the last one.
            let ratio: number | undefined;
            if ((rb === lastA && rj === lastB) || (rb === lastB && rj === lastA)) ratio = lastRatio;
            else {
              const key = rb < rj ? rb * n + rj : rj * n + rb;
              ratio = decided.get(key);
              if (ratio === undefined) {
                ratio = neckBetween(rb, rj, d);
                decided.set(key, ratio);
                if (ratio >= 0) splits.push([rb, rj, ratio]);
              }
              lastA = rb;
              lastB = rj;
              lastRatio = ratio;
            }
            if (ratio >= 0) {
              contact[rb] = Math.max(contact[rb], d);
              contact[rj] = Math.max(contact[rj], d);
            } else {
              const [keep, drop] = peakOf[rb] >= peakOf[rj] ? [rb, rj] : [rj, rb];
              parent[drop] = keep;
              absorb(keep, drop);
            }
          }
        }
        if (distance[j] > bestDistance) {
          bestDistance = distance[j];
          best = basin[j];
        }
      }
    }
    if (best < 0) {
      parent[i] = i;
      peakOf[i] = d;
      basin[i] = i;
    } else {
      basin[i] = find(best);
    }
  }

  const regionOf = new Int32Array(n).fill(0);
  const regions = new Int32Array(n);
  let count = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    const root = find(basin[i]);
    if (regionOf[root] === 0) regionOf[root] = ++count;
    regions[i] = regionOf[root];
  }
  const resplitDoubt: [number, number][] = [];
  const shapeCutLabels: number[] = [];
  for (const [root, peaks] of options.junctions ? absorbed : []) {
    if (find(root) !== root || contact[root] < JUNCTION_CONTACT * peakOf[root]) continue;
    const markers = junctionMarkers(root, peaks, peakOf, width, distance, options);
    if (markers.length < 2) continue;
    const region = regionOf[root];
    const members: number[] = [];
    for (let i = 0; i < n; i++) if (regions[i] === region) members.push(i);
    const nearest = nearestDisc(coordinatesOf(members, width), markers, peakOf, width);
    const share = new Int32Array(markers.length);
    for (const m of nearest) share[m]++;
    // Each body gets at least half its inscribed disc's area, or the basin stays whole (a peak whose body
    // was already cut off elsewhere would only take a sliver of the junction).
    if (markers.some((c, m) => share[m] < MIN_SHARE * Math.PI * peakOf[c] ** 2)) continue;
    const labelOf = markers.map((_, m) => (m === 0 ? region : ++count));
    members.forEach((i, k) => (regions[i] = labelOf[nearest[k]]));
    for (const label of labelOf) resplitDoubt.push([label, RESPLIT_DOUBT]);
  }
  if (options.shapes) {
    const resplit = new Set(resplitDoubt.map(([label]) => label));
    const membersOf = new Map<number, number[]>();
    for (const [root] of absorbed)
      if (find(root) === root && !resplit.has(regionOf[root])) membersOf.set(regionOf[root], []);
    const wanted = new Uint8Array(count + 1);
    for (const label of membersOf.keys()) wanted[label] = 1;
    for (let i = 0; i < n; i++) if (wanted[regions[i]]) (membersOf.get(regions[i]) as number[]).push(i);
    for (const [root, peaks] of absorbed) {
      const members = membersOf.get(regionOf[root]);
      if (!members || find(root) !== root) continue;
      const parts = shapeMarkers(root, peaks, peakOf, members, width);
      if (!parts) continue;
      const labelOf = parts.markers.map((_, m) => (m === 0 ? regionOf[root] : ++count));
      members.forEach((i, k) => (regions[i] = labelOf[parts.nearest[k]]));
      for (const label of labelOf) resplitDoubt.push([label, parts.doubt]);
      shapeCutLabels.push(...labelOf);
    }
  }
  if (options.refineBoundaries !== false) {
    const shared = pixelsOfSharedComponents(labels, regions, count);
    for (let pass = 0; pass < BOUNDARY_PASSES; pass++)
      if (!reassignByEllipses(labels, regions, count, width, shared)) break;
    if (absorbSlivers(regions, count, width, height, distance))
      for (let pass = 0; pass < BOUNDARY_PASSES; pass++)
        if (!reassignByEllipses(labels, regions, count, width, shared)) break;
  }
  const splitDoubt = new Float32Array(count + 1);
  for (const [label, doubt] of resplitDoubt) splitDoubt[label] = Math.max(splitDoubt[label], doubt);
  for (const [a, b, ratio] of splits) {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) continue;
    const doubt = ratio / neckRatio;
    for (const r of [regionOf[ra], regionOf[rb]]) splitDoubt[r] = Math.max(splitDoubt[r], doubt);
  }
  const shapeCut = new Uint8Array(count + 1);
  for (const label of shapeCutLabels) shapeCut[label] = 1;
  return { width, height, labels: regions, count, splitDoubt, shapeCut };
}

/**
 * Junction re-split (measured on the tuning split): two absorbed peaks are two bodies when they are
 * further apart than the larger radius plus JUNCTION_APART × the smaller, and the straight segment
 * between them narrows below JUNCTION_NECK × the smaller radius (a weaker neck than the saddle test's:
 * the filled junction widens it). Only a basin that met a neighbour at a saddle of at least
 * JUNCTION_CONTACT × its own peak (it sits against the contact, as a junction does) is re-judged, into
 * at most JUNCTION_MAX bodies, each taking at least MIN_SHARE of its inscribed disc's area.
 */
const JUNCTION_APART = 0.15;
const JUNCTION_NECK = 0.9;
const JUNCTION_CONTACT = 0.75;
const JUNCTION_MAX = 2;
const MIN_SHARE = 0.5;
/** Split doubt given to the bodies separated around a junction maximum (see junctionMarkers). */
const RESPLIT_DOUBT = 0.75;

/**
 * Where three or more spheroids meet, the filled space between them can hold an inscribed disc larger
 * than the smaller bodies' own: a distance maximum at the junction that belongs to none of them. Every
 * body's peak then flows into it without a neck and is absorbed, so the bodies are never judged
 * against each other. This re-judges the peaks a basin absorbed, largest first: a peak becomes a
 * marker when a neck (on the straight segment between the peaks) separates it from every marker
 * already taken. The basin is re-split only if its own peak is not separated so from the markers (it
 * lies between them: the junction); a basin whose own peak stands apart from them is a body itself and
 * stays whole. Returns the markers, or none when the basin is one body (the bumps of one rough spheroid
 * are joined through its core, no neck between them).
 */
function junctionMarkers(
  root: number,
  peaks: number[],
  peakOf: Float32Array,
  width: number,
  distance: Float32Array,
  options: SplitOptions,
): number[] {
  const separated = (a: number, b: number) => {
    const low = Math.min(peakOf[a], peakOf[b]);
    const high = Math.max(peakOf[a], peakOf[b]);
    const apart = Math.hypot((a % width) - (b % width), Math.floor(a / width) - Math.floor(b / width));
    if (apart <= high + JUNCTION_APART * low) return false;
    const neck = minAlongSegment(a, b, width, distance);
    return neck < JUNCTION_NECK * low && low - neck >= options.minDepth;
  };
  const markers: number[] = [];
  for (const p of [...peaks].sort((a, b) => peakOf[b] - peakOf[a]))
    if (markers.length < JUNCTION_MAX && markers.every((m) => separated(m, p))) markers.push(p);
  if (markers.length < 2) return [];
  return markers.every((m) => separated(root, m)) ? [] : markers;
}

/**
 * Shape re-split (measured on the tuning split, 200 cluster scenes): a cut must raise the ellipse
 * fit (IoU) by SHAPE_GAIN, and is only tried while the fit is below SHAPE_FIT_MAX; at most SHAPE_MAX parts.
 */
const SHAPE_GAIN = 0.02;
const SHAPE_FIT_MAX = 0.97;
const SHAPE_MAX = 3;

/** Columns and rows of a list of pixel indices. */
interface Coordinates {
  xs: Int32Array;
  ys: Int32Array;
}

function coordinatesOf(members: number[], width: number): Coordinates {
  const xs = new Int32Array(members.length);
  const ys = new Int32Array(members.length);
  for (let k = 0; k < members.length; k++) {
    const x = members[k] % width;
    xs[k] = x;
    ys[k] = (members[k] - x) / width;
  }
  return { xs, ys };
}

/** Nearest-disc partition of a region's pixels between markers (gap = distance to the centre − inscribed radius). */
function nearestDisc(
  { xs, ys }: Coordinates,
  markers: number[],
  peakOf: Float32Array,
  width: number,
): Int32Array {
  const nearest = new Int32Array(xs.length);
  const mx = markers.map((c) => c % width);
  const my = markers.map((c) => Math.floor(c / width));
  const radius = markers.map((c) => peakOf[c]);
  for (let k = 0; k < xs.length; k++) {
    const x = xs[k];
    const y = ys[k];
    let best = 0;
    let bestGap = Infinity;
    for (let m = 0; m < markers.length; m++) {
      const dx = x - mx[m];
      const dy = y - my[m];
      const gap = Math.sqrt(dx * dx + dy * dy) - radius[m];
      if (gap < bestGap) {
        bestGap = gap;
        best = m;
      }
    }
    nearest[k] = best;
  }
  return nearest;
}

/** Adds pixel (x, y) to the moment sums at `o` of `m`: count, Σx, Σy, Σx², Σy², Σxy. */
function addMoments(m: Float64Array, o: number, x: number, y: number): void {
  m[o]++;
  m[o + 1] += x;
  m[o + 2] += y;
  m[o + 3] += x * x;
  m[o + 4] += y * y;
  m[o + 5] += x * y;
}

/**
 * The equivalent ellipse (same second moments) of the sums at `o`: centre and the inverse of
 * 4 × covariance, [cx, cy, p, q, r] with p·dx² + 2q·dx·dy + r·dy² = 1 on its outline; null for fewer
 * than 3 pixels or a degenerate (line-like) set.
 */
function equivalentEllipse(m: Float64Array, o: number): [number, number, number, number, number] | null {
  const n = m[o];
  if (n < 3) return null;
  const cx = m[o + 1] / n;
  const cy = m[o + 2] / n;
  const a = 4 * (m[o + 3] / n - cx * cx) + 1e-6;
  const c = 4 * (m[o + 4] / n - cy * cy) + 1e-6;
  const b = 4 * (m[o + 5] / n - cx * cy);
  const det = a * c - b * b;
  return det > 0 ? [cx, cy, c / det, -b / det, a / det] : null;
}

/** The moment sums of each part of a partition (6 per part, see addMoments). */
function partMoments({ xs, ys }: Coordinates, part: Int32Array, parts: number): Float64Array {
  const m = new Float64Array(parts * 6);
  for (let k = 0; k < xs.length; k++) addMoments(m, part[k] * 6, xs[k], ys[k]);
  return m;
}

/** The parts' equivalent ellipses, flat (5 numbers each), or null when one has none. */
function partEllipses(m: Float64Array, parts: number): Float64Array | null {
  const shapes = new Float64Array(parts * 5);
  for (let p = 0; p < parts; p++) {
    const e = equivalentEllipse(m, p * 6);
    if (!e) return null;
    shapes.set(e, p * 5);
  }
  return shapes;
}

/**
 * IoU of a region with the union of the equivalent ellipses (same second moments) of its parts.
 */
function ellipseFit(pixels: Coordinates, part: Int32Array, parts: number): number {
  const { xs, ys } = pixels;
  const shapes = partEllipses(partMoments(pixels, part, parts), parts);
  if (!shapes) return 0;
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (let k = 0; k < xs.length; k++) {
    if (xs[k] < minX) minX = xs[k];
    if (xs[k] > maxX) maxX = xs[k];
    if (ys[k] < minY) minY = ys[k];
    if (ys[k] > maxY) maxY = ys[k];
  }
  const padX = Math.ceil((maxX - minX) * 0.2) + 2;
  const padY = Math.ceil((maxY - minY) * 0.2) + 2;
  const x0 = minX - padX;
  const y0 = minY - padY;
  const w = maxX - minX + 1 + 2 * padX;
  const h = maxY - minY + 1 + 2 * padY;
  const inRegion = new Uint8Array(w * h);
  for (let k = 0; k < xs.length; k++) inRegion[(ys[k] - y0) * w + (xs[k] - x0)] = 1;
  let inter = 0;
  let inside = 0;
  for (let yy = 0; yy < h; yy++) {
    const y = yy + y0;
    for (let xx = 0; xx < w; xx++) {
      const x = xx + x0;
      let hit = false;
      for (let o = 0; o < shapes.length; o += 5) {
        const dx = x - shapes[o];
        const dy = y - shapes[o + 1];
        if (shapes[o + 2] * dx * dx + 2 * shapes[o + 3] * dx * dy + shapes[o + 4] * dy * dy <= 1) {
          hit = true;
          break;
        }
      }
      if (!hit) continue;
      inside++;
      if (inRegion[yy * w + xx]) inter++;
    }
  }
  return inter / (xs.length + inside - inter);
}

/** Rounds of ellipse reassignment (see reassignByEllipses) after a trial partition's first cut. */
const SHAPE_ROUNDS = 3;
/** Candidate markers closer than this fraction of the higher peak to a taken one are the same body. */
const SHAPE_DISTINCT = 0.5;
/**
 * At most this many candidate peaks, the highest (6 gave the same tuning-split figures at +25 % CPU per
 * image: nearly every spheroid absorbs ridge maxima, so the step runs on most regions).
 */
const SHAPE_CANDIDATES = 4;

/** Moves each pixel of a partition to the part in whose equivalent ellipse it lies relatively deepest. */
function refinePartition(pixels: Coordinates, part: Int32Array, parts: number): void {
  const { xs, ys } = pixels;
  for (let round = 0; round < SHAPE_ROUNDS; round++) {
    const shapes = partEllipses(partMoments(pixels, part, parts), parts);
    if (!shapes) return;
    for (let k = 0; k < xs.length; k++) {
      const x = xs[k];
      const y = ys[k];
      let bestQ = Infinity;
      for (let p = 0; p < parts; p++) {
        const o = p * 5;
        const dx = x - shapes[o];
        const dy = y - shapes[o + 1];
        const q = shapes[o + 2] * dx * dx + 2 * shapes[o + 3] * dx * dy + shapes[o + 4] * dy * dy;
        if (q < bestQ) {
          bestQ = q;
          part[k] = p;
        }
      }
    }
  }
}

/**
 * A region whose basins all met without a neck can still be several bodies: a small spheroid pressed
 * into a large one, or bodies whose necks the blur and a junction filled (the junction's distance
 * maximum then stands higher than the bodies' own). Shape prior: the region is cut into two, then
 * three parts, starting from its distinct distance peaks (its own and those it absorbed, a peak within
 * SHAPE_DISTINCT × a taken one's radius being the same body), each trial cut refined by moving pixels to
 * the part whose equivalent ellipse they lie deepest in; a cut is kept when the union of the parts'
 * ellipses fits the region better than one ellipse per part before by at least SHAPE_GAIN (IoU), and
 * only while the region is not already fitted to SHAPE_FIT_MAX. One rough or elongated spheroid is
 * fitted well by one ellipse, so it stays whole. Every part must hold at least MIN_SHARE of its
 * starting peak's inscribed disc. The split doubt is 1 for a cut that just passed (gain SHAPE_GAIN),
 * falling to 0.75 for a gain of 4 × SHAPE_GAIN or more.
 */
function shapeMarkers(
  root: number,
  peaks: number[],
  peakOf: Float32Array,
  members: number[],
  width: number,
): { markers: number[]; nearest: Int32Array; doubt: number } | undefined {
  const apart = (a: number, b: number) =>
    Math.hypot((a % width) - (b % width), Math.floor(a / width) - Math.floor(b / width));
  const candidates: number[] = [];
  for (const p of [root, ...peaks].sort((a, b) => peakOf[b] - peakOf[a]))
    if (
      candidates.length < SHAPE_CANDIDATES &&
      candidates.every((c) => apart(c, p) > SHAPE_DISTINCT * peakOf[c])
    )
      candidates.push(p);
  if (candidates.length < 2) return undefined;
  let markers: number[] = [];
  const pixels = coordinatesOf(members, width);
  let nearest = new Int32Array(members.length);
  const first = ellipseFit(pixels, nearest, 1);
  let fit = first;
  const tryCut = (trial: number[]) => {
    const part = nearestDisc(pixels, trial, peakOf, width);
    refinePartition(pixels, part, trial.length);
    const share = new Int32Array(trial.length);
    for (const k of part) share[k]++;
    if (trial.some((c, m) => share[m] < MIN_SHARE * Math.PI * peakOf[c] ** 2)) return undefined;
    return { part, fit: ellipseFit(pixels, part, trial.length) };
  };
  for (let size = 2; size <= SHAPE_MAX && fit < SHAPE_FIT_MAX; size++) {
    let best: { trial: number[]; part: Int32Array; fit: number } | undefined;
    const bases = markers.length ? [markers] : candidates.map((c) => [c]);
    for (const base of bases)
      for (const c of candidates) {
        if (base.includes(c) || (markers.length === 0 && c < base[0])) continue;
        const trial = [...base, c];
        const cut = tryCut(trial);
        if (cut && (!best || cut.fit > best.fit)) best = { trial, ...cut };
      }
    if (!best || best.fit - fit < SHAPE_GAIN) break;
    markers = best.trial;
    nearest = best.part;
    fit = best.fit;
  }
  if (markers.length < 2) return undefined;
  return { markers, nearest, doubt: 1 - 0.25 * Math.min(1, (fit - first - SHAPE_GAIN) / (3 * SHAPE_GAIN)) };
}

/**
 * Most rounds of boundary refinement after the watershed; it stops when no pixel moves. Measured on the
 * tuning split: 2 rounds left the ellipses short of where they settle (cluster family: 41 spheroids
 * below 0.8 IoU of 882, overlap worst 0.735); iterating to convergence, 24 and 0.877.
 */
const BOUNDARY_PASSES = 10;

/**
 * A region left with less than MIN_SHARE of its own largest inscribed disc's area is not a body: it is
 * what remains of a distance maximum in the filled space where three or more spheroids meet, once the
 * neighbours' boundaries have settled around it (the same floor the junction and shape re-splits put on
 * each part). Each such region joins the neighbour it shares the longest boundary with; its label is
 * left empty. Returns whether any region was absorbed.
 */
function absorbSlivers(
  regions: Int32Array,
  count: number,
  width: number,
  height: number,
  distance: Float32Array,
): boolean {
  const area = new Int32Array(count + 1);
  const peak = new Float32Array(count + 1);
  for (let i = 0; i < regions.length; i++) {
    const r = regions[i];
    if (r === 0) continue;
    area[r]++;
    if (distance[i] > peak[r]) peak[r] = distance[i];
  }
  const sliver = new Uint8Array(count + 1);
  let any = false;
  for (let r = 1; r <= count; r++)
    if (area[r] > 0 && area[r] < MIN_SHARE * Math.PI * peak[r] ** 2) {
      sliver[r] = 1;
      any = true;
    }
  if (!any) return false;
  // Boundary length between each sliver and each neighbour (4-neighbourhood).
  const contacts = new Map<number, Map<number, number>>();
  const meet = (a: number, b: number) => {
    if (a === 0 || b === 0 || a === b || !sliver[a] || sliver[b]) return;
    const row = contacts.get(a) ?? new Map<number, number>();
    row.set(b, (row.get(b) ?? 0) + 1);
    contacts.set(a, row);
  };
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const r = regions[i];
      if (r === 0) continue;
      if (x + 1 < width) {
        meet(r, regions[i + 1]);
        meet(regions[i + 1], r);
      }
      if (y + 1 < height) {
        meet(r, regions[i + width]);
        meet(regions[i + width], r);
      }
    }
  const into = new Int32Array(count + 1);
  for (const [r, row] of contacts) {
    let best = 0;
    let longest = 0;
    for (const [b, length] of row)
      if (length > longest) {
        longest = length;
        best = b;
      }
    into[r] = best;
  }
  let absorbed = false;
  for (let i = 0; i < regions.length; i++) {
    const target = into[regions[i]];
    if (target > 0) {
      regions[i] = target;
      absorbed = true;
    }
  }
  return absorbed;
}

/** The object pixels of components that were split into two or more regions (the only ones reassignByEllipses moves). */
function pixelsOfSharedComponents(components: Int32Array, regions: Int32Array, count: number): Int32Array {
  const componentOf = new Int32Array(count + 1);
  let maxComponent = 0;
  for (let i = 0; i < regions.length; i++)
    if (regions[i] !== 0) {
      componentOf[regions[i]] = components[i];
      if (components[i] > maxComponent) maxComponent = components[i];
    }
  const regionsIn = new Int32Array(maxComponent + 1);
  for (let r = 1; r <= count; r++) regionsIn[componentOf[r]]++;
  let total = 0;
  for (let i = 0; i < regions.length; i++) if (regions[i] !== 0 && regionsIn[components[i]] >= 2) total++;
  const pixels = new Int32Array(total);
  let k = 0;
  for (let i = 0; i < regions.length; i++)
    if (regions[i] !== 0 && regionsIn[components[i]] >= 2) pixels[k++] = i;
  return pixels;
}

/**
 * Moves the boundaries between the regions of one component to where their shapes say they are:
 * each region is summarised by its equivalent ellipse (same second moments), and every pixel of a
 * split component goes to the region in whose ellipse it lies relatively deepest (the smallest
 * normalised ellipse distance). The watershed puts the cut through the neck, but where the neck is
 * wide or off-centre its line wanders; two overlapping spheroids meet where each is equally deep.
 * Typed arrays throughout (no per-pixel lookups in maps): it runs up to BOUNDARY_PASSES times per image.
 */
function reassignByEllipses(
  components: Int32Array,
  regions: Int32Array,
  count: number,
  width: number,
  pixels: Int32Array,
): boolean {
  const m = new Float64Array((count + 1) * 6);
  const componentOf = new Int32Array(count + 1);
  let maxComponent = 0;
  for (let k = 0; k < pixels.length; k++) {
    const i = pixels[k];
    const r = regions[i];
    if (r === 0) continue;
    const x = i % width;
    const y = (i - x) / width;
    const o = r * 6; // addMoments, written out: this loop visits every pixel of the split components
    m[o]++;
    m[o + 1] += x;
    m[o + 2] += y;
    m[o + 3] += x * x;
    m[o + 4] += y * y;
    m[o + 5] += x * y;
    componentOf[r] = components[i];
    if (components[i] > maxComponent) maxComponent = components[i];
  }
  // Regions of each component, in label order: start[c] .. start[c + 1] in `list`.
  const start = new Int32Array(maxComponent + 2);
  for (let r = 1; r <= count; r++) start[componentOf[r] + 1]++;
  for (let c = 1; c < start.length; c++) start[c] += start[c - 1];
  const list = new Int32Array(count);
  const fill = start.slice(0, maxComponent + 1);
  for (let r = 1; r <= count; r++) list[fill[componentOf[r]]++] = r;
  // Per region: its equivalent ellipse (q = 1 on its outline); p = 0 when it has none.
  const shape = new Float64Array((count + 1) * 5);
  for (let r = 1; r <= count; r++) {
    const e = equivalentEllipse(m, r * 6);
    if (e) shape.set(e, r * 5);
  }
  let moved = false;
  for (let k = 0; k < pixels.length; k++) {
    const i = pixels[k];
    const r = regions[i];
    if (r === 0) continue;
    const c = componentOf[r];
    const from = start[c];
    const to = start[c + 1];
    if (to - from < 2) continue;
    const x = i % width;
    const y = (i - x) / width;
    let best = r;
    let bestQ = Infinity;
    for (let l = from; l < to; l++) {
      const o = list[l] * 5;
      const p = shape[o + 2];
      if (p === 0) continue;
      const dx = x - shape[o];
      const dy = y - shape[o + 1];
      const q = p * dx * dx + 2 * shape[o + 3] * dx * dy + shape[o + 4] * dy * dy;
      if (q < bestQ) {
        bestQ = q;
        best = list[l];
      }
    }
    if (best !== r) moved = true;
    regions[i] = best;
  }
  return moved;
}

/** The smallest distance value on the straight segment between two pixels. */
function minAlongSegment(from: number, to: number, width: number, distance: Float32Array): number {
  const x0 = from % width;
  const y0 = Math.floor(from / width);
  const x1 = to % width;
  const y1 = Math.floor(to / width);
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  let min = Infinity;
  for (let s = 0; s <= steps; s++) {
    const x = Math.round(x0 + ((x1 - x0) * s) / steps);
    const y = Math.round(y0 + ((y1 - y0) * s) / steps);
    min = Math.min(min, distance[y * width + x]);
  }
  return min;
}

/** The object pixels, highest distance first (a counting sort on quantised distance). */
function pixelsByDescendingDistance(labels: Int32Array, distance: Float32Array): Int32Array {
  let maxLevel = 0;
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 0) continue;
    total++;
    maxLevel = Math.max(maxLevel, Math.floor(distance[i] * LEVELS_PER_PIXEL));
  }
  const start = new Int32Array(maxLevel + 2);
  for (let i = 0; i < labels.length; i++)
    if (labels[i] !== 0) start[maxLevel - Math.floor(distance[i] * LEVELS_PER_PIXEL) + 1]++;
  for (let l = 1; l < start.length; l++) start[l] += start[l - 1];
  const order = new Int32Array(total);
  for (let i = 0; i < labels.length; i++)
    if (labels[i] !== 0) order[start[maxLevel - Math.floor(distance[i] * LEVELS_PER_PIXEL)]++] = i;
  return order;
}
