/**
 * Result edit bench (CONTRACT §3 "Editing a result"; issue 20: "a result of 10 000 polygons / 200 000
 * points is saved and read back within a second on this machine"). One `api` process from the build,
 * NODE_ENV=production, LOG_LEVEL=info, the production heap flags:
 *  - `PUT /api/images/:id/segmentation` of 10 000 polygons × 20 points (200 000 points, coordinates
 *    with 2 decimals, ~4.6 MB of JSON) on the current version, then `GET /api/images/:id/segmentation`
 *    of it, timed at the client from the first byte sent to the last byte read; BENCH_VERSIONS_ROUNDS
 *    rounds (default 5) after one warm-up;
 *  - side by side in the same run, the fixed cost: the same two requests with `polygons: []`;
 *  - where the api's time goes: the same steps in this process (JSON parse, body check, features,
 *    JSON for PostgreSQL) with the modules of the build.
 */
import { performance } from 'node:perf_hooks';
import { jsonDepthExceeds } from '../../src/common/input-rules';
import { buildPolygons, parseEdit } from '../../src/segmentation/result-edit';
import { makePng, uploadImage } from '../../test/support/fixtures';
import {
  benchEnv,
  f1,
  f2,
  invocation,
  json,
  pct,
  register,
  runMain,
  startBackend,
  table,
  writeResults,
} from '../common/harness';
import { waitForQuiet } from '../common/probe';

const ROUNDS = Number(process.env.BENCH_VERSIONS_ROUNDS ?? 5);
const SIZE = 2000;

function bigEdit(base: number) {
  const polygons = Array.from({ length: 10_000 }, (_, i) => {
    const cx = 10 + (i % 100) * 19.8;
    const cy = 10 + Math.floor(i / 100) * 19.8;
    return {
      id: i + 1,
      type: 'external',
      parentId: null,
      points: Array.from({ length: 20 }, (_u, k) => [
        Math.round((cx + 8 * Math.cos((k * Math.PI) / 10)) * 100) / 100,
        Math.round((cy + 8 * Math.sin((k * Math.PI) / 10)) * 100) / 100,
      ]),
    };
  });
  return { baseVersion: base, polygons };
}

runMain(async () => {
  const env = benchEnv('versions');
  const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof
  const api = await startBackend(env, 'api', { LOG_LEVEL: 'info', ENABLE_QUEUE: 'true' }, 'api', nodeArgs);
  const { token } = await register(api);
  const imageId = await uploadImage({ url: api.url }, token, await makePng(SIZE, SIZE), 'big.png');
  let version = 0;

  const timed = async (method: string, path: string, body?: string) => {
    const t0 = performance.now();
    const res = await fetch(api.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body,
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return { ms, bytes: Buffer.byteLength(text), body: text };
  };
  const round = async (empty: boolean) => {
    const edit = empty ? { baseVersion: version, polygons: [] } : bigEdit(version);
    const text = JSON.stringify(edit);
    const save = await timed('PUT', `/api/images/${imageId}/segmentation`, text);
    version = (JSON.parse(save.body) as { version: number }).version;
    const read = await timed('GET', `/api/images/${imageId}/segmentation`);
    const got = JSON.parse(read.body) as { version: number; polygons: unknown[] };
    if (got.version !== version || got.polygons.length !== edit.polygons.length)
      throw new Error('read back something else');
    return {
      save: save.ms,
      read: read.ms,
      total: save.ms + read.ms,
      sent: Buffer.byteLength(text),
      received: read.bytes,
    };
  };

  await round(false); // warm-up (JIT, pool, prepared statements), not recorded
  await round(true);
  const busy = await waitForQuiet();
  const big: Array<Awaited<ReturnType<typeof round>>> = [];
  const small: typeof big = [];
  for (let i = 0; i < ROUNDS; i++) {
    big.push(await round(false));
    small.push(await round(true));
  }
  const busyAfter = await waitForQuiet(0, 0);

  // Where the api spends it: the same steps here, with the build's modules.
  const text = JSON.stringify(bigEdit(1));
  const steps: Record<string, number[]> = {
    'depth check': [],
    'JSON.parse': [],
    'body check': [],
    features: [],
    'JSON for PostgreSQL': [],
  };
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now();
    const buf = Buffer.from(text);
    jsonDepthExceeds(buf);
    steps['depth check'].push(performance.now() - t);
    t = performance.now();
    const body: unknown = JSON.parse(buf.toString('utf8'));
    steps['JSON.parse'].push(performance.now() - t);
    t = performance.now();
    const edit = parseEdit(body, { width: SIZE, height: SIZE });
    steps['body check'].push(performance.now() - t);
    t = performance.now();
    const polygons = buildPolygons(edit, []);
    steps.features.push(performance.now() - t);
    t = performance.now();
    JSON.stringify(polygons);
    steps['JSON for PostgreSQL'].push(performance.now() - t);
  }

  const med = (xs: number[]) => pct(xs, 50);
  const rows = [
    [
      '10 000 polygons / 200 000 points',
      f1(big[0].sent / 2 ** 20),
      f1(big[0].received / 2 ** 20),
      f1(med(big.map((r) => r.save))),
      f1(med(big.map((r) => r.read))),
      f1(med(big.map((r) => r.total))),
      f1(Math.max(...big.map((r) => r.total))),
    ],
    [
      'baseline: polygons: []',
      f2(small[0].sent / 2 ** 20),
      f2(small[0].received / 2 ** 20),
      f1(med(small.map((r) => r.save))),
      f1(med(small.map((r) => r.read))),
      f1(med(small.map((r) => r.total))),
      f1(Math.max(...small.map((r) => r.total))),
    ],
  ];
  const worst = Math.max(...big.map((r) => r.total));
  const body = [
    `One \`api\` process from the build (NODE_ENV=production, LOG_LEVEL=info, \`${'--max-old-space-size=160 --max-semi-space-size=8'}\`), the shared PostgreSQL 15 and Redis; a ${SIZE}×${SIZE} image; each round saves a new version on the current one with \`PUT /api/images/:id/segmentation\` and reads it back with \`GET /api/images/:id/segmentation\` (client time, first byte sent to last byte read), ${ROUNDS} rounds after a warm-up. Machine shared with other helpers' tests and builds: load by others just before the rounds ${f2(busy)} busy cores, just after ${f2(busyAfter)}.`,
    '',
    table(
      [
        'edit',
        'MiB sent',
        'MiB read back',
        'save ms (median)',
        'read ms (median)',
        'save + read ms (median)',
        'save + read ms (max)',
      ],
      rows,
    ),
    '',
    `Goal: save + read of 200 000 points within 1 s: **${worst <= 1000 ? 'met' : 'NOT met'}** (max ${f1(worst)} ms over ${ROUNDS} rounds).`,
    '',
    'The api-side steps of the save, run in the bench process with the same modules (median ms):',
    '',
    table(Object.keys(steps), [Object.values(steps).map((xs) => f1(med(xs)))]),
  ].join('\n');
  console.log(body);
  await api.stop();
  writeResults('versions', 'Result edit: save and read back 200 000 points', invocation(), body);
  void json;
});
