import { Injectable } from '@nestjs/common';
import { PreparedQueries } from '../database/prepared-queries';
import type { ResultSource } from './result.entity';
import type { ResultHead, VersionView } from './views';

/** A version as stored: everything but the polygons, and the polygons as the JSON text they were saved as. */
export interface StoredResult {
  head: ResultHead;
  polygonCount: number;
  spheroidCount: number;
  polygonsJson: string;
}

/** What `spheroseg_new_version` answered: the new version, or why nothing was written. */
export type NewVersionOutcome =
  | { kind: 'ok'; id: number; version: number; createdAt: Date }
  | { kind: 'stale' | 'task' | 'no-version'; current: number }
  | { kind: 'missing' };

type Row = Record<string, unknown>;

/** The polygons come back as text: a large result is passed through to the answer without being parsed. */
const RESULT_COLUMNS = `r.id, r.task_id, r.image_id, r.version, r.source, r.edited_by, u.email AS edited_by_email,
  r.image_width, r.image_height, r.processing_time_ms, r.created_at, r.polygon_count, r.spheroid_count,
  r.polygons::text AS polygons_json`;

/**
 * Reads and writes of result versions (migration ResultVersions). Writing goes through
 * `spheroseg_new_version`, which numbers the version under the image's row lock and refuses a stale
 * base or an image with an open task in the same call; reads never lock.
 */
@Injectable()
export class ResultVersionStore {
  constructor(private readonly prepared: PreparedQueries) {}

  /** The current version (`version` undefined) or version N of an image, or null. */
  async read(imageId: number, version?: number): Promise<StoredResult | null> {
    const rows =
      version === undefined
        ? await this.prepared.rows(
            `SELECT ${RESULT_COLUMNS} FROM segmentation_results r LEFT JOIN users u ON u.id = r.edited_by WHERE r.image_id = $1 AND r.is_current`,
            [imageId],
          )
        : await this.prepared.rows(
            `SELECT ${RESULT_COLUMNS} FROM segmentation_results r LEFT JOIN users u ON u.id = r.edited_by WHERE r.image_id = $1 AND r.version = $2`,
            [imageId, version],
          );
    return rows.length ? toStored(rows[0]) : null;
  }

  /** The current version's number, size and polygons (the base of an edit), or null without a result. */
  async current(
    imageId: number,
  ): Promise<{ version: number; width: number; height: number; polygonsJson: string } | null> {
    const rows = await this.prepared.rows(
      'SELECT version, image_width, image_height, polygons::text AS polygons_json FROM segmentation_results WHERE image_id = $1 AND is_current',
      [imageId],
    );
    const r = rows[0];
    if (!r) return null;
    return {
      version: r.version as number,
      width: r.image_width as number,
      height: r.image_height as number,
      polygonsJson: (r.polygons_json as string | null) ?? '[]',
    };
  }

  /** Every version of an image, newest first, without their polygons. */
  async list(imageId: number): Promise<VersionView[]> {
    const rows = await this.prepared.rows(
      `SELECT r.version, r.source, r.task_id, r.edited_by, u.email AS edited_by_email, r.created_at, r.polygon_count, r.spheroid_count
         FROM segmentation_results r LEFT JOIN users u ON u.id = r.edited_by
        WHERE r.image_id = $1 ORDER BY r.version DESC`,
      [imageId],
    );
    return rows.map((r) => ({
      version: r.version as number,
      source: r.source as ResultSource,
      taskId: (r.task_id as string | null) ?? null,
      editedBy: editor(r),
      createdAt: (r.created_at as Date).toISOString(),
      polygonCount: r.polygon_count as number,
      spheroidCount: r.spheroid_count as number,
    }));
  }

  /**
   * Writes the next version when `base` is the current one (0: none yet) and no task of the image is
   * open: an edit (`polygons` as JSON text) or, with `fromVersion`, a copy of that version's polygons.
   */
  async create(
    imageId: number,
    base: number,
    userId: number,
    edit:
      | { fromVersion: number }
      | { width: number; height: number; spheroidCount: number; polygonsJson: string },
  ): Promise<NewVersionOutcome> {
    const rows = await this.prepared.rows(
      'SELECT * FROM spheroseg_new_version($1, $2, $3, $4, $5, $6, $7, $8::json)',
      'fromVersion' in edit
        ? [imageId, base, userId, edit.fromVersion, null, null, null, null]
        : [imageId, base, userId, null, edit.width, edit.height, edit.spheroidCount, edit.polygonsJson],
    );
    const r = rows[0];
    const kind = r?.o_outcome as string | undefined;
    if (kind === 'ok')
      return {
        kind,
        id: r.o_id as number,
        version: r.o_version as number,
        createdAt: r.o_created_at as Date,
      };
    if (kind === 'stale' || kind === 'task' || kind === 'no-version')
      return { kind, current: r.o_current as number };
    return { kind: 'missing' };
  }
}

function editor(r: Row): ResultHead['editedBy'] {
  return r.source === 'edit' && r.edited_by != null
    ? { id: r.edited_by as number, email: r.edited_by_email as string }
    : null;
}

function toStored(r: Row): StoredResult {
  return {
    head: {
      taskId: (r.task_id as string | null) ?? null,
      imageId: r.image_id as number,
      version: r.version as number,
      source: r.source as ResultSource,
      editedBy: editor(r),
      imageWidth: r.image_width as number,
      imageHeight: r.image_height as number,
      processingTimeMs: r.processing_time_ms as number,
      createdAt: (r.created_at as Date).toISOString(),
    },
    polygonCount: r.polygon_count as number,
    spheroidCount: r.spheroid_count as number,
    polygonsJson: (r.polygons_json as string | null) ?? '[]',
  };
}
