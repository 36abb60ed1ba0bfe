import type { MlPolygon, TaskStatus } from '../common/contracts';
import type { ResultPolygon, ResultSource } from './result.entity';
import type { TaskEntity } from './task.entity';

/** The public `task` of CONTRACT §3. */
export interface TaskView {
  taskId: string;
  imageId: number;
  status: TaskStatus;
  priority: number;
  progress: number;
  attempts: number;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

export const toTaskView = (t: TaskEntity): TaskView => ({
  taskId: t.taskId,
  imageId: t.imageId,
  status: t.status,
  priority: t.priority,
  progress: t.progress,
  attempts: t.attempts,
  error: t.errorMessage,
  createdAt: t.createdAt.toISOString(),
  startedAt: t.startedAt?.toISOString() ?? null,
  completedAt: t.completedAt?.toISOString() ?? null,
});

/** The person who saved an edit, as `result.editedBy` shows them. */
export interface EditorView {
  id: number;
  email: string;
}

/** The public `result` of CONTRACT §3: one version of an image's result. */
export interface ResultView {
  taskId: string | null;
  imageId: number;
  version: number;
  source: ResultSource;
  editedBy: EditorView | null;
  imageWidth: number;
  imageHeight: number;
  processingTimeMs: number;
  createdAt: string;
  polygons: ResultPolygon[];
}

/** A `result` without its polygons. */
export type ResultHead = Omit<ResultView, 'polygons'>;

/**
 * The JSON text of a `result` from its head and its polygons' JSON text as stored: a result of
 * 200 000 points goes from PostgreSQL to the client without being parsed and serialised again.
 */
export const resultJson = (head: ResultHead, polygonsJson: string): string => {
  const ordered: ResultHead = {
    taskId: head.taskId,
    imageId: head.imageId,
    version: head.version,
    source: head.source,
    editedBy: head.editedBy,
    imageWidth: head.imageWidth,
    imageHeight: head.imageHeight,
    processingTimeMs: head.processingTimeMs,
    createdAt: head.createdAt,
  };
  return `${JSON.stringify(ordered).slice(0, -1)},"polygons":${polygonsJson}}`;
};

/** An entry of `GET /api/images/:id/segmentation/versions`. */
export interface VersionView {
  version: number;
  source: ResultSource;
  taskId: string | null;
  editedBy: EditorView | null;
  createdAt: string;
  polygonCount: number;
  spheroidCount: number;
}

/** ML wire polygon (snake_case) → API polygon (camelCase). Features keep their own keys, camelCased. */
export const fromWirePolygon = (p: MlPolygon): ResultPolygon => ({
  id: p.id,
  type: p.type,
  parentId: p.parent_id ?? null,
  points: p.points,
  class: p.class,
  confidence: p.confidence,
  features: Object.fromEntries(
    Object.entries(p.features ?? {}).map(([k, v]) => [
      k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
      v,
    ]),
  ),
});
