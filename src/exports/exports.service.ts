import { Injectable } from '@nestjs/common';
import { stringify } from 'csv-stringify';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cocoAnnotations, cocoImage, COCO_CATEGORIES } from './coco-export';
import { CSV_COLUMNS, csvRecords } from './csv-export';
import { ExportReader, ExportScope } from './export-reader';
import { MAX_IDS_PER_REQUEST } from '../access';

export const EXPORT_FORMATS = ['csv', 'coco'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const MAX_EXPORT_IDS = MAX_IDS_PER_REQUEST;

/** A ready export: headers to send and the body stream (nothing read until it is consumed). */
export interface ExportStream {
  contentType: string;
  fileName: string;
  body: Readable;
}

/**
 * `GET /api/segmentation/export`: CSV (one row per spheroid) or COCO, streamed from keyset pages of
 * the database (ExportReader), so memory does not grow with the number of images. The access rule of
 * the route (AccessGuard) has allowed every id or the project before anything is sent.
 */
@Injectable()
export class ExportsService {
  constructor(private readonly reader: ExportReader) {}

  /** An export of `scope` (allowed by the access rule), ready to stream. */
  open(scope: ExportScope, format: ExportFormat, now = new Date()): ExportStream {
    const stamp = now
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    if (format === 'csv') {
      return {
        contentType: 'text/csv; charset=utf-8',
        fileName: `spheroseg-export-${stamp}.csv`,
        body: this.csv(scope),
      };
    }
    return {
      contentType: 'application/json',
      fileName: `spheroseg-export-${stamp}.coco.json`,
      body: Readable.from(this.coco(scope, now), { objectMode: false }),
    };
  }

  private csv(scope: ExportScope): Readable {
    const reader = this.reader;
    async function* records() {
      for await (const image of reader.images(scope, true)) yield* csvRecords(image);
    }
    const out = stringify({
      header: true,
      columns: [...CSV_COLUMNS],
      record_delimiter: 'windows',
      // RFC 4180: a field with a line break is quoted too (csv-stringify quotes only "\r\n" by default).
      quoted_match: /[\r\n]/,
      cast: { number: (v) => String(v) },
    });
    pipeline(Readable.from(records()), out).catch((err: unknown) => out.destroy(err as Error));
    return out;
  }

  /** COCO JSON in pieces: images (first pass) then annotations (second pass), in one snapshot. */
  private async *coco(scope: ExportScope, now: Date): AsyncGenerator<string> {
    const { runner, done } = await this.reader.snapshot();
    try {
      const info = {
        description: 'Spheroseg segmentation export',
        version: '1.0',
        date_created: now.toISOString(),
      };
      yield `{"info":${JSON.stringify(info)},"licenses":[],"categories":${JSON.stringify(COCO_CATEGORIES)},"images":[`;
      let first = true;
      for await (const image of this.reader.images(scope, false, runner)) {
        yield (first ? '' : ',') + JSON.stringify(cocoImage(image));
        first = false;
      }
      yield '],"annotations":[';
      first = true;
      let id = 0;
      const nextId = () => ++id;
      for await (const image of this.reader.images(scope, true, runner)) {
        const parts: string[] = [];
        for (const a of cocoAnnotations(image, nextId)) parts.push(JSON.stringify(a));
        if (parts.length === 0) continue;
        yield (first ? '' : ',') + parts.join(',');
        first = false;
      }
      yield ']}';
    } finally {
      await done();
    }
  }
}
