import cvModule from '@techstark/opencv-js';

/** The OpenCV.js namespace (OpenCV 4.12 compiled to WebAssembly). */
export type Cv = typeof cvModule;
export type Mat = InstanceType<Cv['Mat']>;

type EmscriptenModule = Cv & { then(onReady: (module: Cv) => void): unknown };

/**
 * Resolves once the WebAssembly runtime is initialised (about half a second; once per thread).
 * The result is wrapped in an object on purpose: the emscripten module is itself a thenable whose
 * `then` hands back the module again, so awaiting it directly never settles.
 */
export function loadOpenCv(): Promise<{ cv: Cv }> {
  return new Promise((resolve) => {
    (cvModule as EmscriptenModule).then(() => resolve({ cv: cvModule }));
  });
}

/**
 * Owns the Mats created during one computation and frees them all at the end: WASM memory is not
 * garbage collected.
 */
export class MatScope {
  private readonly owned: { delete(): void }[] = [];

  constructor(readonly cv: Cv) {}

  track<T extends { delete(): void }>(value: T): T {
    this.owned.push(value);
    return value;
  }

  mat(): Mat {
    return this.track(new this.cv.Mat());
  }

  release(): void {
    for (const value of this.owned.splice(0).reverse()) value.delete();
  }
}

export function withMatScope<R>(cv: Cv, run: (scope: MatScope) => R): R {
  const scope = new MatScope(cv);
  try {
    return run(scope);
  } finally {
    scope.release();
  }
}

/**
 * Copies a Mat's pixels out of the WASM heap. Views such as `mat.data` are invalidated as soon as
 * the heap grows (any later allocation may do so), so nothing keeps a view across OpenCV calls.
 */
export function copyU8(mat: Mat): Uint8Array {
  return mat.data.slice();
}
export function copyI32(mat: Mat): Int32Array {
  return mat.data32S.slice();
}
export function copyF32(mat: Mat): Float32Array {
  return mat.data32F.slice();
}

/**
 * Erosion or dilation by an octagonal disc of radius `radius`: the Minkowski sum of ⌈radius/2⌉ 3×3
 * crosses and ⌊radius/2⌋ 3×3 squares (what alternating 3×3 cross and square steps give). The squares
 * are applied at once as one (2s+1)² rectangle, which OpenCV runs as two separable passes.
 */
export function morphDisc(scope: MatScope, src: Mat, dst: Mat, op: 'erode' | 'dilate', radius: number): void {
  const { cv } = scope;
  if (radius <= 0) {
    src.copyTo(dst);
    return;
  }
  const squares = Math.floor(radius / 2);
  const crosses = radius - squares;
  const cross = scope.track(cv.getStructuringElement(cv.MORPH_CROSS, new cv.Size(3, 3)));
  const anchor = new cv.Point(-1, -1);
  const border = cv.BORDER_REPLICATE;
  const apply = (from: Mat, kernel: Mat) =>
    op === 'erode'
      ? cv.erode(from, dst, kernel, anchor, 1, border)
      : cv.dilate(from, dst, kernel, anchor, 1, border);
  let from = src;
  if (squares > 0) {
    const side = 2 * squares + 1;
    apply(from, scope.track(cv.getStructuringElement(cv.MORPH_RECT, new cv.Size(side, side))));
    from = dst;
  }
  for (let i = 0; i < crosses; i++) {
    apply(from, cross);
    from = dst;
  }
}
