import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { stringify } from 'csv-stringify';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImagesService } from '../images/images.service';
import { cocoAnnotations, cocoImage, COCO_CATEGORIES } from './coco-export';
import { CSV_COLUMNS, csvRecords } from './csv-export';
import { ExportReader } from './export-reader';

export const EXPORT_FORMATS = ['csv', 'coco'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const MAX_EXPORT_IDS = 10_000;

const MAX_INT4 = 2_147_483_647;
const ID_RE = /^\d{1,10}$/;

/** A ready export: headers to send and the body stream (nothing read until it is consumed). */
export interface ExportStream {
  contentType: string;
  fileName: string;
  body: Readable;
}

/**
 * `GET /api/segmentation/export`: CSV (one row per spheroid) or COCO, streamed from keyset pages of
 * the database (ExportReader), so memory does not grow with the number of images. Ownership of every
 * id is checked before anything is sent.
 */
@Injectable()
export class ExportsService {
  constructor(
    private readonly reader: ExportReader,
    private readonly images: ImagesService,
  ) {}

  /** `imageIds` query value(s) → distinct ids (400 when malformed or more than 10 000). */
  parseIds(raw: unknown): number[] | null {
    if (raw === undefined) return null;
    const parts = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => String(v).split(','));
    const ids: number[] = [];
    for (const part of parts) {
      const s = part.trim();
      if (!ID_RE.test(s) || Number(s) > MAX_INT4) {
        throw new BadRequestException('imageIds must be a comma-separated list of image ids (decimal integers)');
      }
      ids.push(Number(s));
    }
    if (ids.length > MAX_EXPORT_IDS) throw new BadRequestException(`imageIds: at most ${MAX_EXPORT_IDS} ids`);
    const distinct = [...new Set(ids)].sort((a, b) => a - b);
    if (distinct.length > MAX_EXPORT_IDS) throw new BadRequestException(`imageIds: at most ${MAX_EXPORT_IDS} ids`);
    return distinct;
  }

  async open(userId: number, format: ExportFormat, imageIds: number[] | null, now = new Date()): Promise<ExportStream> {
    if (imageIds && (await this.images.countOwned(userId, imageIds)) !== imageIds.length) {
      throw new NotFoundException('image not found');
    }
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    if (format === 'csv') {
      return { contentType: 'text/csv; charset=utf-8', fileName: `spheroseg-export-${stamp}.csv`, body: this.csv(userId, imageIds) };
    }
    return {
      contentType: 'application/json',
      fileName: `spheroseg-export-${stamp}.coco.json`,
      body: Readable.from(this.coco(userId, imageIds, now), { objectMode: false }),
    };
  }

  private csv(userId: number, imageIds: number[] | null): Readable {
    const reader = this.reader;
    async function* records() {
      for await (const image of reader.images(userId, imageIds, true)) yield* csvRecords(image);
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
  private async *coco(userId: number, imageIds: number[] | null, now: Date): AsyncGenerator<string> {
    const { runner, done } = await this.reader.snapshot();
    try {
      const info = { description: 'Spheroseg segmentation export', version: '1.0', date_created: now.toISOString() };
      yield `{"info":${JSON.stringify(info)},"licenses":[],"categories":${JSON.stringify(COCO_CATEGORIES)},"images":[`;
      let first = true;
      for await (const image of this.reader.images(userId, imageIds, false, runner)) {
        yield (first ? '' : ',') + JSON.stringify(cocoImage(image));
        first = false;
      }
      yield '],"annotations":[';
      first = true;
      let id = 0;
      const nextId = () => ++id;
      for await (const image of this.reader.images(userId, imageIds, true, runner)) {
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
