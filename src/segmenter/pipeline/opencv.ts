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

/** Repeats a 3×3 erosion or dilation, alternating cross and square kernels: a cheap octagonal disc of radius `radius`. */
export function morphDisc(scope: MatScope, src: Mat, dst: Mat, op: 'erode' | 'dilate', radius: number): void {
  const { cv } = scope;
  const cross = scope.track(cv.getStructuringElement(cv.MORPH_CROSS, new cv.Size(3, 3)));
  const square = scope.track(cv.getStructuringElement(cv.MORPH_RECT, new cv.Size(3, 3)));
  if (radius <= 0) {
    src.copyTo(dst);
    return;
  }
  const anchor = new cv.Point(-1, -1);
  const border = cv.BORDER_REPLICATE;
  for (let i = 0; i < radius; i++) {
    const kernel = i % 2 === 0 ? cross : square;
    const from = i === 0 ? src : dst;
    if (op === 'erode') cv.erode(from, dst, kernel, anchor, 1, border);
    else cv.dilate(from, dst, kernel, anchor, 1, border);
  }
}
