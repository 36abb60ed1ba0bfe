import type { MlSegmentResults } from '../common/contracts';

/** Messages between the segmenter's HTTP thread and its segmentation worker threads. */
export interface SegmentTask {
  id: number;
  /** Absolute path, already checked to lie under the upload root. */
  imagePath: string;
  maxPixels: number;
}

/** Why a segmentation failed: bad input (4xx to the caller) or a fault of the service (5xx). */
export type FailureKind = 'bad-image' | 'not-found' | 'internal';

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'result'; id: number; results: MlSegmentResults }
  | { type: 'failure'; id: number; kind: FailureKind; message: string };
