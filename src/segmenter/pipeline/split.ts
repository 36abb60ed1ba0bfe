/**
 * Separation of touching spheroids on the distance transform of the object mask. Seeds are the
 * centres of maximal inscribed discs: distance peaks, taken from the highest down, kept only when
 * they lie outside every kept disc and the mask narrows between them to a neck thinner than
 * `neckRatio` × the smaller radius. Components with two or more seeds are then grown from their
 * seeds in order of decreasing distance (a watershed on the distance height), so the cut falls on
 * the neck; the others stay whole.
 */
export interface LabelImage {
  width: number;
  height: number;
  /** 0 = background, 1..count = object. */
  labels: Int32Array;
  count: number;
}

export interface SplitOptions {
  /** Smallest seed radius, in working pixels. */
  minPeakRadius: number;
  neckRatio: number;
}

interface Peak {
  index: number;
  radius: number;
}

/** Number of distance levels per working pixel in the growth queue. */
const LEVELS_PER_PIXEL = 4;

export function splitTouching(
  components: LabelImage,
  distance: Float32Array,
  options: SplitOptions,
): LabelImage {
  const peaks = findSeeds(components, distance, options);
  const regions = new Int32Array(components.labels.length);
  let count = 0;
  const seeds = peaks.filter((p) => p.length >= 2).flat();
  for (const seed of seeds) regions[seed.index] = ++count;
  growFromSeeds(components, distance, regions, seeds);
  const wholeId = new Int32Array(components.count + 1);
  const { labels } = components;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label === 0 || regions[i] !== 0 || peaks[label].length >= 2) continue;
    if (wholeId[label] === 0) wholeId[label] = ++count;
    regions[i] = wholeId[label];
  }
  return { width: components.width, height: components.height, labels: regions, count };
}

function findSeeds(components: LabelImage, distance: Float32Array, options: SplitOptions): Peak[][] {
  const byLabel: Peak[][] = Array.from({ length: components.count + 1 }, () => []);
  for (const peak of localMaxima(components, distance, options.minPeakRadius)) {
    byLabel[components.labels[peak.index]].push(peak);
  }
  return byLabel.map((candidates) => selectSeeds(candidates, components.width, distance, options.neckRatio));
}

function localMaxima(components: LabelImage, distance: Float32Array, minRadius: number): Peak[] {
  const { width, height, labels } = components;
  const peaks: Peak[] = [];
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      const i = y * width + x;
      const d = distance[i];
      if (labels[i] === 0 || d < minRadius) continue;
      if (
        d >= distance[i - 1] &&
        d >= distance[i + 1] &&
        d >= distance[i - width] &&
        d >= distance[i + width] &&
        d >= distance[i - width - 1] &&
        d >= distance[i - width + 1] &&
        d >= distance[i + width - 1] &&
        d >= distance[i + width + 1]
      ) {
        peaks.push({ index: i, radius: d });
      }
    }
  }
  return peaks;
}

function selectSeeds(candidates: Peak[], width: number, distance: Float32Array, neckRatio: number): Peak[] {
  candidates.sort((a, b) => b.radius - a.radius);
  const kept: Peak[] = [];
  for (const candidate of candidates) {
    const distinct = kept.every((seed) => {
      const dx = (candidate.index % width) - (seed.index % width);
      const dy = Math.floor(candidate.index / width) - Math.floor(seed.index / width);
      if (Math.hypot(dx, dy) <= seed.radius) return false;
      return minAlongSegment(seed.index, candidate.index, width, distance) < neckRatio * candidate.radius;
    });
    if (distinct) kept.push(candidate);
  }
  return kept;
}

/** The smallest distance value on the straight segment between two pixels: the width of the neck between them. */
function minAlongSegment(from: number, to: number, width: number, distance: Float32Array): number {
  const x0 = from % width;
  const y0 = Math.floor(from / width);
  const x1 = to % width;
  const y1 = Math.floor(to / width);
  const steps = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0));
  let min = Infinity;
  for (let s = 0; s <= steps; s++) {
    const x = Math.round(x0 + ((x1 - x0) * s) / steps);
    const y = Math.round(y0 + ((y1 - y0) * s) / steps);
    min = Math.min(min, distance[y * width + x]);
  }
  return min;
}

/** Priority flood from the seeds over their own components, highest distance first. */
function growFromSeeds(
  components: LabelImage,
  distance: Float32Array,
  regions: Int32Array,
  seeds: Peak[],
): void {
  if (seeds.length === 0) return;
  const { width, height, labels } = components;
  const levelOf = (i: number) => Math.floor(distance[i] * LEVELS_PER_PIXEL);
  const buckets: number[][] = [];
  let level = 0;
  for (const seed of seeds) {
    const l = levelOf(seed.index);
    (buckets[l] ??= []).push(seed.index);
    level = Math.max(level, l);
  }
  const offsets = [-1, 1, -width, width, -width - 1, -width + 1, width - 1, width + 1];
  for (; level >= 0; level--) {
    const bucket = buckets[level];
    while (bucket && bucket.length > 0) {
      const i = bucket.pop() as number;
      const x = i % width;
      const y = (i - x) / width;
      for (const offset of offsets) {
        const j = i + offset;
        const jx = j % width;
        if (j < 0 || j >= width * height || Math.abs(jx - x) > 1 || Math.abs((j - jx) / width - y) > 1)
          continue;
        if (regions[j] !== 0 || labels[j] !== labels[i]) continue;
        regions[j] = regions[i];
        (buckets[Math.min(level, levelOf(j))] ??= []).push(j);
      }
    }
  }
}
