import { ML_FEATURE_KEYS } from '../common/contracts';
import type { ResultPolygon } from '../segmentation/result.entity';
import type { ExportImage } from './export-reader';

/** CSV columns, in the contract's order (CONTRACT §3). */
export const CSV_COLUMNS = [
  'image_id',
  'original_name',
  'task_id',
  'polygon_id',
  ...ML_FEATURE_KEYS,
  'confidence',
  'holes',
  'hole_area',
  'version',
] as const;

/** Feature columns (the wire's snake_case) and the camelCase key the result stores them under. */
const FEATURES: Array<[string, string]> = ML_FEATURE_KEYS.map((k) => [
  k,
  k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()),
]);

/** A text cell a spreadsheet would read as a formula gets a leading `'` (CONTRACT §3). */
export const neutralise = (text: string): string => (/^[=+\-@]/.test(text) ? `'${text}` : text);

const num = (v: unknown): number | '' => (typeof v === 'number' && Number.isFinite(v) ? v : '');
const feature = (p: ResultPolygon, key: string): unknown =>
  p.features?.[key] ??
  (p.features as Record<string, unknown> | undefined)?.[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];

/** The internal polygons (holes) of `parent`. */
export const holesOf = (polygons: readonly ResultPolygon[], parent: ResultPolygon): ResultPolygon[] =>
  polygons.filter(
    (q) => q.type === 'internal' && q.parentId !== null && String(q.parentId) === String(parent.id),
  );

/** One record per spheroid (external polygon) of an image's current result; `version` names that result (`task_id` is empty for an edit). */
export function* csvRecords(image: ExportImage): Generator<Record<string, string | number>> {
  const polygons = image.polygons ?? [];
  for (const p of polygons) {
    if (p.type !== 'external') continue;
    const holes = holesOf(polygons, p);
    const record: Record<string, string | number> = {
      image_id: image.imageId,
      original_name: neutralise(image.originalName),
      task_id: image.taskId === null ? '' : neutralise(image.taskId),
      polygon_id: neutralise(String(p.id)),
    };
    for (const [column, key] of FEATURES) record[column] = num(feature(p, key));
    record.confidence = num(p.confidence);
    record.holes = holes.length;
    record.hole_area = holes.reduce((sum, h) => sum + (num(feature(h, 'area')) || 0), 0);
    record.version = image.version;
    yield record;
  }
}
