import { BadRequestException } from '@nestjs/common';
import { type Point, polygonArea, polygonFeatures } from '../common/geometry/polygon-features';
import { MAX_INT4 } from '../common/input-rules';
import type { ResultPolygon } from './result.entity';

/** Limits of one edit (CONTRACT §3 "Editing a result"). */
export const MAX_EDIT_POLYGONS = 10_000;
export const MAX_EDIT_POINTS = 200_000;
/** Problems listed in one 400 answer (the rest are summarised). */
const MAX_MESSAGES = 20;
const POLYGON_KEYS = new Set(['id', 'type', 'parentId', 'points', 'class', 'confidence', 'features']);
const BODY_KEYS = new Set(['baseVersion', 'polygons']);

/** A polygon as the client sent it, checked: the server still computes its features and confidence. */
export interface EditedPolygon {
  id: number | string | undefined;
  type: 'external' | 'internal';
  parentId: number | string | null;
  points: [number, number][];
  class: string;
}

export interface ParsedEdit {
  baseVersion: number;
  polygons: EditedPolygon[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number | string =>
  (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) ||
  (typeof v === 'string' && v.length >= 1 && v.length <= 64);

/** `baseVersion` of a PUT or restore body: 0 (no result yet) or a version number. */
export function parseBaseVersion(body: unknown): number {
  if (!isObject(body)) throw new BadRequestException(['the body must be a JSON object with baseVersion']);
  const v = body.baseVersion;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_INT4) {
    throw new BadRequestException([
      'baseVersion must be an integer ≥ 0 (the current version, 0 when there is none)',
    ]);
  }
  return v;
}

/** The body of a restore: `{ baseVersion }` and nothing else (400 naming an unknown field, as everywhere). */
export function parseRestore(body: unknown): number {
  const base = parseBaseVersion(body);
  const unknown = Object.keys(body as object).filter((k) => k !== 'baseVersion');
  if (unknown.length) throw new BadRequestException(unknown.map((k) => `property ${k} should not exist`));
  return base;
}

/**
 * Checks the body of `PUT /api/images/:id/segmentation` without class-validator (200 000 points
 * would cost it seconds): every problem is a 400 naming the polygon (`polygons[i]`, and its id when
 * it has one). Points must lie in `[0, width] × [0, height]` (the result's image size).
 */
export function parseEdit(body: unknown, space: { width: number; height: number }): ParsedEdit {
  const baseVersion = parseBaseVersion(body);
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !BODY_KEYS.has(k));
  if (unknown.length) throw new BadRequestException(unknown.map((k) => `property ${k} should not exist`));
  const list = b.polygons;
  if (!Array.isArray(list)) throw new BadRequestException(['polygons must be an array']);
  if (list.length > MAX_EDIT_POLYGONS)
    throw new BadRequestException([`polygons: at most ${MAX_EDIT_POLYGONS} polygons`]);
  let total = 0;
  for (const p of list) if (isObject(p) && Array.isArray(p.points)) total += p.points.length;
  if (total > MAX_EDIT_POINTS)
    throw new BadRequestException([`polygons: at most ${MAX_EDIT_POINTS} points in all (${total} sent)`]);

  const problems: string[] = [];
  const name = (i: number, p: unknown) =>
    isObject(p) && isId(p.id) ? `polygons[${i}] (id ${JSON.stringify(p.id)})` : `polygons[${i}]`;
  const out: EditedPolygon[] = [];
  const ids = new Map<string, number>();
  for (let i = 0; i < list.length && problems.length < MAX_MESSAGES; i++) {
    const p: unknown = list[i];
    const at = name(i, p);
    if (!isObject(p)) {
      problems.push(`${at} must be an object`);
      continue;
    }
    const extra = Object.keys(p).filter((k) => !POLYGON_KEYS.has(k));
    if (extra.length) problems.push(`${at}: property ${extra.join(', ')} should not exist`);
    if ('id' in p && !isId(p.id))
      problems.push(`${at}: id must be an integer ≥ 0 or a string of 1..64 characters`);
    if (isId(p.id)) {
      const key = String(p.id);
      const first = ids.get(key);
      if (first !== undefined)
        problems.push(`${at}: id ${JSON.stringify(p.id)} is also the id of polygons[${first}]`);
      else ids.set(key, i);
    }
    if (p.type !== 'external' && p.type !== 'internal')
      problems.push(`${at}: type must be "external" or "internal"`);
    if ('class' in p && (typeof p.class !== 'string' || p.class.length < 1 || p.class.length > 64)) {
      problems.push(`${at}: class must be a string of 1..64 characters`);
    }
    const parentId = p.parentId === undefined ? null : p.parentId;
    if (parentId !== null && !isId(parentId)) problems.push(`${at}: parentId must be null or a polygon id`);
    if (p.type === 'external' && parentId !== null)
      problems.push(`${at}: an external polygon must have parentId null`);
    const points = p.points;
    if (!Array.isArray(points)) {
      problems.push(`${at}: points must be an array of [x, y]`);
      continue;
    }
    if (points.length < 3) problems.push(`${at}: at least 3 points are needed (${points.length} sent)`);
    let bad = -1;
    for (let k = 0; k < points.length; k++) {
      const pt: unknown = points[k];
      if (
        !Array.isArray(pt) ||
        pt.length !== 2 ||
        typeof pt[0] !== 'number' ||
        typeof pt[1] !== 'number' ||
        !Number.isFinite(pt[0]) ||
        !Number.isFinite(pt[1]) ||
        pt[0] < 0 ||
        pt[1] < 0 ||
        pt[0] > space.width ||
        pt[1] > space.height
      ) {
        bad = k;
        break;
      }
    }
    if (bad >= 0) {
      problems.push(
        `${at}: points[${bad}] must be two finite numbers within [0, ${space.width}] × [0, ${space.height}] (got ${JSON.stringify(points[bad])?.slice(0, 60)})`,
      );
      continue;
    }
    if (points.length >= 3 && polygonArea(points as Point[]) === 0)
      problems.push(`${at}: the polygon has zero area`);
    out.push({
      id: isId(p.id) ? p.id : undefined,
      type: p.type as EditedPolygon['type'],
      parentId: parentId as EditedPolygon['parentId'],
      points: points as [number, number][],
      class: typeof p.class === 'string' ? p.class : 'spheroid',
    });
  }
  // Holes must point at an external polygon of this same request.
  if (problems.length === 0) {
    const externals = new Set(
      out.filter((p) => p.type === 'external' && p.id !== undefined).map((p) => String(p.id)),
    );
    out.forEach((p, i) => {
      if (p.type === 'internal' && (p.parentId === null || !externals.has(String(p.parentId)))) {
        problems.push(
          `${name(i, p)}: parentId ${JSON.stringify(p.parentId)} is not an external polygon of this request`,
        );
      }
    });
  }
  if (problems.length) {
    if (problems.length >= MAX_MESSAGES) problems.push('(further problems not listed)');
    throw new BadRequestException(problems.slice(0, MAX_MESSAGES + 1));
  }
  return { baseVersion, polygons: out };
}

/**
 * The polygons to store: features computed here (the one computation, src/common/geometry);
 * `confidence` kept for a polygon whose id and points are those of the base version, 1 otherwise; a
 * polygon without an id gets the next free integer id (above every id of the request and the base).
 */
export function buildPolygons(edit: ParsedEdit, base: readonly ResultPolygon[]): ResultPolygon[] {
  const baseById = new Map(base.map((p) => [String(p.id), p]));
  let next = 0;
  for (const p of [...base, ...edit.polygons]) {
    if (typeof p.id === 'number' && p.id >= next) next = p.id + 1;
    else if (typeof p.id === 'string' && /^\d{1,15}$/.test(p.id) && Number(p.id) >= next)
      next = Number(p.id) + 1;
  }
  return edit.polygons.map((p) => {
    const id = p.id ?? next++;
    const before = p.id === undefined ? undefined : baseById.get(String(p.id));
    const f = polygonFeatures(p.points);
    return {
      id,
      type: p.type,
      parentId: p.parentId,
      points: p.points,
      class: p.class,
      confidence: before && samePoints(before.points, p.points) ? before.confidence : 1,
      // The wire's feature keys in camelCase, as fromWirePolygon stores a model's (spelt out: 10 000 polygons).
      features: {
        area: f.area,
        perimeter: f.perimeter,
        circularity: f.circularity,
        solidity: f.solidity,
        eccentricity: f.eccentricity,
        majorAxis: f.major_axis,
        minorAxis: f.minor_axis,
        orientation: f.orientation,
        centroidX: f.centroid_x,
        centroidY: f.centroid_y,
      },
    };
  });
}

function samePoints(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0] || a[i][1] !== b[i][1]) return false;
  return true;
}
