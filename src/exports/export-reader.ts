import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, QueryRunner } from 'typeorm';
import type { ResultPolygon } from '../segmentation/result.entity';

/** One image of the caller with its current result. */
export interface ExportImage {
  imageId: number;
  originalName: string;
  width: number;
  height: number;
  /** Null for an edit. */
  taskId: string | null;
  /** The version exported (the current one). */
  version: number;
  /** Present when read `withPolygons`. */
  polygons?: ResultPolygon[];
}

/**
 * Which images an export covers (each allowed by the access rule before): the caller's personal
 * images, a project's images, or the listed ids.
 */
export type ExportScope = { personalOf: number } | { project: number } | { ids: readonly number[] };

/** Images per query: bounds the memory of a page (polygons are the large part). */
export const EXPORT_PAGE_SIZE = 50;

/**
 * Reads the images of a scope that have a current result, in image id order, one keyset page
 * (`id > last`) at a time, so memory stays that of one page whatever the number of images. Pass a
 * query runner to read every page inside one transaction (one snapshot for several passes).
 */
@Injectable()
export class ExportReader {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** A query runner in a read-only REPEATABLE READ transaction; `done()` ends it and releases it. */
  async snapshot(): Promise<{ runner: QueryRunner; done: () => Promise<void> }> {
    const runner = this.db.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    } catch (err) {
      await runner.release();
      throw err;
    }
    return {
      runner,
      done: async () => {
        try {
          await runner.query('COMMIT');
        } catch {
          /* the connection may be gone; release anyway */
        } finally {
          await runner.release();
        }
      },
    };
  }

  async *images(
    scope: ExportScope,
    withPolygons: boolean,
    runner?: QueryRunner,
  ): AsyncGenerator<ExportImage> {
    const [where, value] =
      'ids' in scope
        ? ['i.id = ANY($1::int[])', scope.ids]
        : 'project' in scope
          ? ['i.project_id = $1', scope.project]
          : ['i.user_id = $1 AND i.project_id IS NULL', scope.personalOf];
    let after = 0;
    for (;;) {
      const params: unknown[] = [value, after, EXPORT_PAGE_SIZE];
      const rows = (await (runner ?? this.db).query(
        `SELECT i.id, i.original_name, i.width, i.height, r.task_id, r.version${withPolygons ? ', r.polygons' : ''}
           FROM images i
           JOIN segmentation_results r ON r.image_id = i.id AND r.is_current
          WHERE ${where} AND i.id > $2
          ORDER BY i.id
          LIMIT $3`,
        params,
      )) as Array<{
        id: number;
        original_name: string;
        width: number;
        height: number;
        task_id: string | null;
        version: number;
        polygons?: ResultPolygon[];
      }>;
      for (const r of rows) {
        yield {
          imageId: Number(r.id),
          originalName: r.original_name,
          width: r.width,
          height: r.height,
          taskId: r.task_id,
          version: r.version,
          ...(withPolygons ? { polygons: r.polygons ?? [] } : {}),
        };
      }
      if (rows.length < EXPORT_PAGE_SIZE) return;
      after = Number(rows[rows.length - 1].id);
    }
  }
}
