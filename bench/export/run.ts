/**
 * Export and thumbnail bench (NODE_ENV=production, LOG_LEVEL=info, one `api` process from the build):
 *  - `GET /api/segmentation/export` of 200 and of 2 000 images' results as CSV and as COCO: time, bytes,
 *    and the api's RSS (its own `process_resident_memory_bytes`, sampled every 50 ms) before and at peak;
 *  - `GET /api/images/:id/thumbnail`: first request (decode + resize + write) vs cached requests.
 * Results are inserted in SQL (10 polygons per image: 6 spheroids, 4 holes), images are clones of one.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { benchEnv, f1, f2, invocation, json, pct, register, runMain, seedImages, startBackend, table, writeResults } from '../common/harness';
import { makePng, uploadImage } from '../../test/support/fixtures';

const N = Number(process.env.BENCH_EXPORT_IMAGES ?? 2000);

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
    const features = { area: 300, perimeter: 62, circularity: 0.9, solidity: 0.95, eccentricity: 0.2, majorAxis: 20, minorAxis: 18, orientation: 10, centroidX: cx, centroidY: cy };
    out.push({ id: ext, type: 'external', parentId: null, points: ring(cx, cy, 9, 32), class: 'spheroid', confidence: 0.9, features });
    if (k < 4) out.push({ id: id++, type: 'internal', parentId: ext, points: ring(cx, cy, 3, 12), class: 'spheroid', confidence: 0.9, features: { ...features, area: 28 } });
  }
  return out;
}

runMain(async () => {
  const env = benchEnv('export');
  const api = await startBackend(env, 'api', { LOG_LEVEL: 'info', ENABLE_QUEUE: 'true' });
  const pg = await env.pg();
  const { token, id: userId } = await register(api);
  const ids = await seedImages(api, env, pg, token, userId, N);
  const polys = JSON.stringify(polygons());
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const tasks = chunk.map(() => randomUUID());
    await pg.query(
      `INSERT INTO queue_jobs (task_id, job_id, image_id, user_id, status, priority, progress, attempts)
       SELECT t, t::text, i, $3, 'completed', 1, 100, 1 FROM unnest($1::uuid[], $2::int[]) AS x(t, i)`,
      [tasks, chunk, userId],
    );
    await pg.query(
      `INSERT INTO segmentation_results (task_id, image_id, image_width, image_height, processing_time_ms, polygon_count, polygons)
       SELECT t, i, 64, 48, 10, 10, $3::jsonb FROM unnest($1::uuid[], $2::int[]) AS x(t, i)`,
      [tasks, chunk, polys],
    );
  }

  const rows: Array<Array<string | number>> = [];
  const exportOnce = async (format: string, count: number) => {
    const q = count < N ? `&imageIds=${ids.slice(0, count).join(',')}` : '';
    const before = await api.rss();
    let peak = before;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await api.rss());
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = performance.now();
    const res = await api.request(`/api/segmentation/export?format=${format}${q}`, { token, timeoutMs: 600_000 });
    if (res.status !== 200) throw new Error(`export ${format}: ${res.status} ${await res.text()}`);
    let bytes = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
    const ms = performance.now() - t0;
    sampling = false;
    await sampler;
    return { ms, bytes, before, peak };
  };
  // warm-up (JIT, pool), not recorded
  await exportOnce('csv', Math.min(50, N));
  await exportOnce('coco', Math.min(50, N));
  const growth: Record<string, number[]> = {};
  for (const format of ['csv', 'coco']) {
    for (const count of [200, N]) {
      const r = await exportOnce(format, count);
      (growth[format] ??= []).push((r.peak - r.before) / 2 ** 20);
      rows.push([format, count, f1(r.ms), f1((r.bytes / 2 ** 20)), f1(r.before / 2 ** 20), f1(r.peak / 2 ** 20), f1((r.peak - r.before) / 2 ** 20)]);
    }
  }

  // thumbnails: 5 real 2000×1500 PNGs, first request vs 20 cached ones each
  const firsts: number[] = [];
  const cached: number[] = [];
  const big = await makePng(2000, 1500);
  for (let k = 0; k < 5; k++) {
    const id = await uploadImage({ url: api.url }, token, big, `big-${k}.png`);
    const image = await json<{ urls: { thumbnail: string } }>(api.request(`/api/images/${id}`, { token }), 200);
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

  const body = [
    `${N} images (64×48 clones), each with a current result of 10 polygons (6 spheroids, 4 of them with a hole): CSV ${6 * N} rows, COCO ${6 * N} annotations (${4 * N} as RLE). One \`api\` process, NODE_ENV=production, LOG_LEVEL=info. RSS = the api's own \`process_resident_memory_bytes\`, sampled every 50 ms during the download (which the bench reads and discards).`,
    '',
    table(['format', 'images', 'time ms', 'MiB sent', 'api RSS before MiB', 'api RSS peak MiB', 'growth MiB'], rows),
    '',
    `RSS growth, ${N} vs 200 images: CSV ${f1(growth.csv[1])} vs ${f1(growth.csv[0])} MiB, COCO ${f1(growth.coco[1])} vs ${f1(growth.coco[0])} MiB (10× the images).`,
    '',
    table(
      ['thumbnail 256 of a 2000×1500 PNG', 'requests', 'p50 ms', 'p90 ms'],
      [
        ['first request (decode, resize, WebP, write)', firsts.length, f1(pct(firsts, 50)), f1(pct(firsts, 90))],
        ['cached (served from storage)', cached.length, f1(pct(cached, 50)), f1(pct(cached, 90))],
      ],
    ),
    '',
    `first / cached (p50) = ${f2(pct(firsts, 50) / pct(cached, 50))}×.`,
  ].join('\n');
  console.log(body);
  writeResults('export', 'Export (CSV, COCO) and thumbnails', invocation(), body);
});
