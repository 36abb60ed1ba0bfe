import { type MorphStep, morphBinary } from '../../src/segmenter/pipeline/binary-morph';
import { type Cv, morphDisc, withMatScope, loadOpenCv } from '../../src/segmenter/pipeline/opencv';
import { rng } from '../fixtures/synthetic';

/** Blobs, specks and thin lines touching the borders: what the pipeline's masks are made of. */
function randomMask(seed: number, width: number, height: number): Uint8Array {
  const r = rng(seed);
  const mask = new Uint8Array(width * height);
  const shapes = 3 + Math.floor(r() * 12);
  for (let s = 0; s < shapes; s++) {
    const cx = r() * width;
    const cy = r() * height;
    const radius = r() < 0.3 ? r() * 3 : r() * Math.min(width, height) * 0.4;
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        if (Math.hypot(x - cx, (y - cy) * (0.5 + r() * 0.01)) < radius) mask[y * width + x] = 255;
  }
  for (let i = 0; i < mask.length; i++) if (r() < 0.02) mask[i] = mask[i] ? 0 : 255;
  return mask;
}

function viaOpenCv(cv: Cv, mask: Uint8Array, width: number, height: number, steps: MorphStep[]): Uint8Array {
  return withMatScope(cv, (scope) => {
    const mat = scope.track(new cv.Mat(height, width, cv.CV_8UC1));
    mat.data.set(mask);
    for (const { op, radius } of steps) morphDisc(scope, mat, mat, op, radius);
    return mat.data.slice();
  });
}

let cv: Cv;
beforeAll(async () => {
  ({ cv } = await loadOpenCv());
});

describe('morphBinary = morphDisc (OpenCV, BORDER_REPLICATE) on binary masks', () => {
  // Widths around word boundaries (31, 32, 33, 64) and the working sizes.
  it.each([
    [31, 40],
    [32, 32],
    [33, 17],
    [64, 70],
    [97, 45],
    [500, 375],
  ])(
    '%i × %i: the same pixels for every radius 0–20, erosions, dilations, openings, closings',
    (width, height) => {
      for (let seed = 1; seed <= 6; seed++) {
        const mask = randomMask(seed * 7919 + width, width, height);
        for (let radius = 0; radius <= 20; radius += seed % 2 ? 1 : 3) {
          for (const steps of [
            [{ op: 'erode', radius }],
            [{ op: 'dilate', radius }],
            [
              { op: 'erode', radius },
              { op: 'dilate', radius },
            ],
            [
              { op: 'dilate', radius },
              { op: 'erode', radius },
            ],
          ] as MorphStep[][]) {
            const want = viaOpenCv(cv, mask, width, height, steps);
            const got = morphBinary(mask, width, height, steps);
            if (Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0)
              throw new Error(`seed ${seed} radius ${radius} ${JSON.stringify(steps)}: pixels differ`);
          }
        }
      }
    },
  );
});
