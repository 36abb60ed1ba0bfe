/**
 * The typed vocabulary shared by every module and by the tests: task states, the Bull job payload,
 * the Socket.IO events (CONTRACT §6) and the ML wire format (CONTRACT §8). Keep every cross-process
 * message shape here and nowhere else.
 */

export const TASK_STATUSES = ['queued', 'processing', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const OPEN_TASK_STATUSES: readonly TaskStatus[] = ['queued', 'processing'];

export const IMAGE_SEGMENTATION_STATUSES = ['none', ...TASK_STATUSES] as const;
export type ImageSegmentationStatus = (typeof IMAGE_SEGMENTATION_STATUSES)[number];

export type UserRole = 'user' | 'admin';

/**
 * Bull job names and payloads. The payload carries ids, and the image's storage key as a hint only: the
 * worker's claim reads the task's state and the key from PostgreSQL, and that answer decides.
 */
export const SEGMENT_JOB = 'segment' as const;
export interface SegmentJobData {
  taskId: string;
  imageId: number;
  userId: number;
  /**
   * The image's storage key when the job was queued (absent in jobs queued before it was added, or by a
   * path that did not read it). Lets a worker start the ML call alongside its claim without a read of its
   * own; a claim that answers another key (or none) cancels that call.
   */
  storagePath?: string;
}
export interface JobDataMap {
  [SEGMENT_JOB]: SegmentJobData;
}

/** ML circuit state as the contract spells it. */
export type CircuitState = 'closed' | 'open' | 'halfOpen';

/**
 * Every event of a task: its ids, and `projectId` when its image is in a project (CONTRACT §6: such
 * events also go to the project's room).
 */
export interface TaskEventBase {
  taskId: string;
  imageId: number;
  projectId?: number;
}

/** Socket.IO server → client events (CONTRACT §6). */
export interface ServerToClientEvents {
  'segmentation:queued': (p: TaskEventBase & { priority: number }) => void;
  'segmentation:progress': (p: TaskEventBase & { progress: number }) => void;
  'segmentation:completed': (
    p: TaskEventBase & {
      /** Every polygon of the result, holes included (= `result.polygons.length`). */
      polygonCount: number;
      /** External polygons (spheroids). */
      spheroidCount: number;
      processingTimeMs: number;
    },
  ) => void;
  'segmentation:failed': (
    p: TaskEventBase & {
      error: string;
      attempt: number;
      willRetry: boolean;
    },
  ) => void;
  'segmentation:cancelled': (p: TaskEventBase) => void;
  /** An image got a new current result by an edit or a restore (CONTRACT §3 "Editing a result"). */
  'segmentation:updated': (p: {
    imageId: number;
    /** The image's project; null for a personal image. */
    projectId: number | null;
    version: number;
    source: 'ml' | 'edit';
    /** Every polygon of the new version, holes included. */
    polygonCount: number;
    /** Its external polygons. */
    spheroidCount: number;
  }) => void;
  'ml:status': (p: { state: CircuitState; available: boolean }) => void;
}
export type ServerEventName = keyof ServerToClientEvents;
export type ServerEventPayload<E extends ServerEventName> = Parameters<ServerToClientEvents[E]>[0];
export type UserEventName = Exclude<ServerEventName, 'ml:status'>;

/** Room a user's sockets join. */
export const userRoom = (userId: number | string): string => `user:${userId}`;
/** Room of a project's subscribed sockets (`project:subscribe`). */
export const projectRoom = (projectId: number | string): string => `project:${projectId}`;

/** Socket.IO client → server events (CONTRACT §6 project rooms); the ack answers `ProjectSubscribeAck`. */
export type ProjectSubscribeAck = { ok: true } | { ok: false; error: string };
export interface ClientToServerEvents {
  'project:subscribe': (p: { projectId: number }, ack?: (a: ProjectSubscribeAck) => void) => void;
  'project:unsubscribe': (p: { projectId: number }, ack?: (a: ProjectSubscribeAck) => void) => void;
}

/** A task as the events need it: who queued it and its image's project (null: a personal image). */
export interface TaskEventTarget {
  taskId: string;
  imageId: number;
  userId: number;
  projectId?: number | null;
}

/** ML wire format (snake_case, CONTRACT §8). */
export interface MlFeatures {
  area: number;
  perimeter: number;
  circularity: number;
  solidity: number;
  eccentricity: number;
  major_axis: number;
  minor_axis: number;
  orientation: number;
  centroid_x: number;
  centroid_y: number;
}
/** The feature keys of a wire polygon, in the contract's order (also the CSV export's columns). */
export const ML_FEATURE_KEYS = [
  'area',
  'perimeter',
  'circularity',
  'solidity',
  'eccentricity',
  'major_axis',
  'minor_axis',
  'orientation',
  'centroid_x',
  'centroid_y',
] as const satisfies ReadonlyArray<keyof MlFeatures>;

export interface MlPolygon {
  id: number | string;
  type: 'external' | 'internal';
  parent_id: number | string | null;
  points: [number, number][];
  class: string;
  confidence: number;
  features: MlFeatures;
}
export interface MlSegmentRequest {
  /** Path relative to UPLOAD_DIR (`local`), or the object's storage key (`s3`). */
  image_path: string;
  task_id: string;
  /** With STORAGE_DRIVER=s3: a presigned GET link to the object (CONTRACT §8, §9). */
  image_url?: string;
}
export interface MlSegmentResults {
  image_width: number;
  image_height: number;
  processing_time_ms: number;
  polygons: MlPolygon[];
}
export type MlSegmentResponse =
  { success: true; results: MlSegmentResults } | { success: false; error: string };
export interface MlHealthResponse {
  status: string;
  model_loaded: boolean;
}

/** Last known ML availability, as workers report it (read by health and the gateway on connect). */
export interface MlStatusSnapshot {
  state: CircuitState;
  available: boolean;
}
/** Injection token of the provider that reads the current MlStatusSnapshot (exported by MlModule). */
export const ML_STATUS_READER = Symbol('ML_STATUS_READER');
export interface MlStatusReader {
  current(): Promise<MlStatusSnapshot>;
}

/**
 * A message for a Redis channel, encoded ahead: a Socket.IO event as the Redis emitter would publish it
 * (RealtimePublisher.taskEventPublication), sent by another module in the same round trip as its own
 * commands (SegmentationQueue.addBulk).
 */
export interface Publication {
  channel: string;
  message: Buffer | string;
}
