import * as path from 'node:path';
import type { FamilyFigures } from '../fixtures/cluster-quality';
import { FAMILIES, type Family } from '../fixtures/cluster-scenes';
import { runTsInChild } from './run-ts-in-child';

/**
 * The hard cluster scenes (test/fixtures/cluster-scenes.ts) on held-out seeds, which the tuning never
 * looked at. The benchmark reports all 24 held-out scenes of every family. Here the cluster family and
 * issue 23's contact family (chains of 3–6 touching or overlapping at random angles, optical densities
 * adding) run all 24 as well: the cluster family held the last failures (merged bodies such as seed
 * 702006, which the shape step now cuts), and chains of touching spheroids are what failed outside. The
 * `vignette` family (strong vignetting, bodies cut by the border in the dark corners: a dark corner must
 * be no object, a cut body must stay one) runs all 24 too. The other families run their first
 * PER_FAMILY scenes to keep CI time modest. Floors are the issue's targets for every family: mean ≥ 0.92, all matched, worst ≥ 0.6,
 * no extra polygon.
 */
const PER_FAMILY = 6;
const FULL_FAMILIES: readonly Family[] = ['cluster', 'contact', 'vignette'];
const CLUSTER_SCENES = 24;
const MEAN_FLOOR = 0.92;
const WORST_FLOOR = 0.6;

let figures: FamilyFigures[];
beforeAll(async () => {
  const run = (options: object) =>
    runTsInChild<FamilyFigures[]>(
      path.resolve(__dirname, '../fixtures/cluster-quality.ts'),
      'runClusterSuite',
      [options],
    );
  const [others, clusters] = await Promise.all([
    run({
      split: 'held-out',
      perFamily: PER_FAMILY,
      families: FAMILIES.filter((f) => !FULL_FAMILIES.includes(f)),
    }),
    run({ split: 'held-out', perFamily: CLUSTER_SCENES, families: FULL_FAMILIES }),
  ]);
  figures = [...others, ...clusters].filter((f) => f.family !== 'all');
  process.stdout.write(
    `segmenter clusters ${JSON.stringify(figures.map(({ extras: _extras, ...rest }) => rest))}\n`,
  );
}, 240_000);

const of = (family: Family) => {
  const found = figures.find((f) => f.family === family);
  if (!found) throw new Error(`no figures for ${family}`);
  return found;
};

describe('cluster scenes, held-out seeds', () => {
  it.each(FAMILIES.filter((f) => f !== 'empty'))(
    '%s: spheroids found (IoU ≥ 0.5), worst and mean above their floors, no extra polygon',
    (family) => {
      const f = of(family);
      expect(f.images).toBe(FULL_FAMILIES.includes(family) ? CLUSTER_SCENES : PER_FAMILY);
      expect(f.spheroids).toBeGreaterThanOrEqual(f.images);
      expect(f.matched).toBe(1);
      expect(f.worstIoU).toBeGreaterThanOrEqual(WORST_FLOOR);
      expect(f.extras).toEqual([]);
      expect(f.meanIoU).toBeGreaterThanOrEqual(MEAN_FLOOR);
      expect(f.foregroundIoU).toBeGreaterThanOrEqual(0.9);
    },
  );

  it('empty: no polygon on debris, bubbles, fibres and faint cells', () => {
    const f = of('empty');
    expect(f.images).toBe(PER_FAMILY);
    expect(f.spheroids).toBe(0);
    expect(f.extras).toEqual([]);
  });

  it('all families together: mean per-spheroid IoU ≥ 0.92, foreground IoU ≥ 0.95', () => {
    const spheroids = figures.reduce((n, f) => n + f.spheroids, 0);
    const images = figures.reduce((n, f) => n + f.images, 0);
    expect(figures.reduce((s, f) => s + f.meanIoU * f.spheroids, 0) / spheroids).toBeGreaterThanOrEqual(0.92);
    expect(figures.reduce((s, f) => s + f.foregroundIoU * f.images, 0) / images).toBeGreaterThanOrEqual(0.95);
  });

  it('gives a pale spheroid sitting in a halo a lower confidence than the dense ones', () => {
    const halo = of('halo');
    expect(halo.meanConfidencePale).not.toBeNull();
    expect(halo.meanConfidenceDense).not.toBeNull();
    expect(halo.meanConfidencePale as number).toBeLessThan((halo.meanConfidenceDense as number) - 0.05);
  });
});
