import * as path from 'node:path';
import type { FamilyFigures } from '../fixtures/cluster-quality';
import { FAMILIES, type Family } from '../fixtures/cluster-scenes';
import { runTsInWorker } from './run-ts-in-worker';

/**
 * The hard cluster scenes (test/fixtures/cluster-scenes.ts), one slice of the held-out seeds per case
 * family: seeds the tuning never looked at. The benchmark reports all 24 held-out scenes per family;
 * these are its first PER_FAMILY, kept small for CI time. Floors per family are what the method must
 * keep: the targets (mean ≥ 0.92, all matched, worst ≥ 0.6, no extra polygon) where it meets
 * them, lower stated floors where it does not yet (halo and cluster means; see RESULTS-segmenter.md).
 */
const PER_FAMILY = 6;
const MEAN_FLOOR: Record<Family, number> = {
  single: 0.92,
  chain: 0.92,
  cluster: 0.88,
  overlap: 0.92,
  halo: 0.85,
  border: 0.92,
  empty: 1,
};

let figures: FamilyFigures[];
beforeAll(async () => {
  figures = await runTsInWorker<FamilyFigures[]>(
    path.resolve(__dirname, '../fixtures/cluster-quality.ts'),
    'runClusterSuite',
    [{ split: 'held-out', perFamily: PER_FAMILY }],
  );
  process.stdout.write(
    `segmenter clusters ${JSON.stringify(figures.map(({ extras: _extras, ...rest }) => rest))}\n`,
  );
}, 240_000);

const of = (family: Family | 'all') => {
  const found = figures.find((f) => f.family === family);
  if (!found) throw new Error(`no figures for ${family}`);
  return found;
};

describe('cluster scenes, held-out seeds', () => {
  it.each(FAMILIES.filter((f) => f !== 'empty'))(
    '%s: every spheroid found (IoU ≥ 0.5), worst ≥ 0.6, no extra polygon, mean above its floor',
    (family) => {
      const f = of(family);
      expect(f.images).toBe(PER_FAMILY);
      expect(f.spheroids).toBeGreaterThanOrEqual(PER_FAMILY);
      expect(f.matched).toBe(1);
      expect(f.worstIoU).toBeGreaterThanOrEqual(0.6);
      expect(f.extras).toEqual([]);
      expect(f.meanIoU).toBeGreaterThanOrEqual(MEAN_FLOOR[family]);
      expect(f.foregroundIoU).toBeGreaterThanOrEqual(0.85);
    },
  );

  it('empty: no polygon on debris, bubbles, fibres and faint cells', () => {
    const f = of('empty');
    expect(f.images).toBe(PER_FAMILY);
    expect(f.spheroids).toBe(0);
    expect(f.extras).toEqual([]);
  });

  it('all families together: mean per-spheroid IoU ≥ 0.92, foreground IoU ≥ 0.95', () => {
    expect(of('all').meanIoU).toBeGreaterThanOrEqual(0.92);
    expect(of('all').foregroundIoU).toBeGreaterThanOrEqual(0.95);
  });

  it('gives a pale spheroid sitting in a halo a lower confidence than the dense ones', () => {
    const halo = of('halo');
    expect(halo.meanConfidencePale).not.toBeNull();
    expect(halo.meanConfidenceDense).not.toBeNull();
    expect(halo.meanConfidencePale as number).toBeLessThan((halo.meanConfidenceDense as number) - 0.05);
  });
});
