import { type Cells, fitIllumination } from '../../../src/segmenter/pipeline/preprocess';

/** A 40 × 30 grid lit by a tilted vignetting dome, with a dark body cut by the left border. */
function vignettedGrid(body: boolean): { cells: Cells; light: (x: number, y: number) => number } {
  const width = 40;
  const height = 30;
  const light = (x: number, y: number) => {
    const u = (2 * x) / (width - 1) - 1;
    const v = (2 * y) / (height - 1) - 1;
    return 200 * (1 + 0.1 * u - 0.05 * v) * (1 - 0.2 * (u * u + v * v));
  };
  const values = new Uint8Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const inBody = body && Math.hypot(x + 2, y - 15) < 9;
      values[y * width + x] = Math.round(light(x, y) * (inBody ? 0.3 : 1));
    }
  return { cells: { width, height, values }, light };
}

/** What a closing that cannot see beyond the border gives: the darkest cells (the corners) overestimated. */
const overestimated = (cells: Cells) => cells.values.map((v) => (v < 150 ? Math.min(255, v * 1.3) : v));

describe('fitIllumination', () => {
  it('recovers the dome from background cells even where the first estimate was too bright, and continues it beyond the border', () => {
    const { cells, light } = vignettedGrid(false);
    const surface = fitIllumination(cells, overestimated(cells), 0.12);
    expect(surface).toBeDefined();
    const fit = surface as (x: number, y: number) => number;
    // A quadratic is close to a tilted dome (a cubic): within 8 % at the corners, 2 % inside.
    for (const [x, y] of [
      [0, 0],
      [39, 29],
      [0, 29],
      [39, 0],
    ])
      expect(Math.abs(fit(x, y) / light(x, y) - 1)).toBeLessThan(0.08);
    expect(Math.abs(fit(20, 15) / light(20, 15) - 1)).toBeLessThan(0.02);
    // Beyond the corner the light keeps falling.
    expect(fit(-5, -5)).toBeLessThan(fit(0, 0));
  });

  it('is not pulled down by a dark body cut by the border: beyond it the surface stays at the background', () => {
    const { cells, light } = vignettedGrid(true);
    const fit = fitIllumination(cells, overestimated(cells), 0.12) as (x: number, y: number) => number;
    expect(Math.abs(fit(-3, 15) - light(-3, 15))).toBeLessThan(4);
    expect(Math.abs(fit(0, 15) - light(0, 15))).toBeLessThan(2);
  });

  it('gives no surface when too few cells are background', () => {
    const { cells } = vignettedGrid(false);
    const dark = cells.values.map((v, i) => (i % 5 === 0 ? v : Math.round(v * 0.3)));
    expect(fitIllumination({ ...cells, values: dark }, cells.values, 0.12)).toBeUndefined();
  });
});
