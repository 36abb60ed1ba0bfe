import type { ResultPolygon } from '../segmentation/result.entity';
import { holesOf } from './csv-export';
import type { ExportImage } from './export-reader';
import { countsArea, countsToRuns, rleFromPolygon, runsArea, runsToCounts, subtractRuns, unionRuns } from './coco-rle';

export const COCO_CATEGORIES = [{ id: 1, name: 'spheroid' }];

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: 1;
  iscrowd: 0;
  segmentation: number[][] | { counts: number[]; size: [number, number] };
  area: number;
  bbox: [number, number, number, number];
}

const flat = (p: ResultPolygon): number[] =>
  (p.points ?? []).filter((pt) => Number.isFinite(pt?.[0]) && Number.isFinite(pt?.[1])).flatMap(([x, y]) => [x, y]);

/** The `images` entry of one image. */
export const cocoImage = (image: ExportImage) => ({
  id: image.imageId,
  file_name: image.originalName,
  width: image.width,
  height: image.height,
});

/**
 * One annotation per spheroid (external polygon): a polygon list when it has no holes, else
 * uncompressed RLE of the polygon less its holes (`size: [height, width]`); `area` is what pycocotools
 * computes from that segmentation, `bbox` the outline's `[x, y, w, h]`. `nextId` numbers them.
 */
export function* cocoAnnotations(image: ExportImage, nextId: () => number): Generator<CocoAnnotation> {
  const polygons = image.polygons ?? [];
  const h = image.height;
  const w = image.width;
  for (const p of polygons) {
    if (p.type !== 'external') continue;
    const outline = flat(p);
    if (outline.length < 2) continue;
    const xs = outline.filter((_, i) => i % 2 === 0);
    const ys = outline.filter((_, i) => i % 2 === 1);
    const minX = Math.min(...xs);
    const minY = Math.min(...ys);
    const bbox: [number, number, number, number] = [minX, minY, Math.max(...xs) - minX, Math.max(...ys) - minY];
    const holes = holesOf(polygons, p)
      .map(flat)
      .filter((hole) => hole.length >= 6);
    const outlineCounts = rleFromPolygon(outline, h, w);
    // A list of 4 numbers would be read as a box by pycocotools: short outlines go as RLE too.
    if (holes.length === 0 && outline.length >= 6) {
      yield {
        id: nextId(),
        image_id: image.imageId,
        category_id: 1,
        iscrowd: 0,
        segmentation: [outline],
        area: countsArea(outlineCounts),
        bbox,
      };
      continue;
    }
    const holeRuns = unionRuns(holes.map((hole) => countsToRuns(rleFromPolygon(hole, h, w))));
    const runs = subtractRuns(countsToRuns(outlineCounts), holeRuns);
    yield {
      id: nextId(),
      image_id: image.imageId,
      category_id: 1,
      iscrowd: 0,
      segmentation: { counts: runsToCounts(runs, h * w), size: [h, w] },
      area: runsArea(runs),
      bbox,
    };
  }
}
