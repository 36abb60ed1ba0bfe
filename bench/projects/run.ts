/**
 * What the projects access rule costs (issue 19): the task read and the upload of bench/api and
 * bench/upload, measured with the rule (this build) and without it (the build before projects,
 * `BENCH_BASE_MAIN`, e.g. built from the commit before into a directory of its own), side by side in
 * one run: one `api` process of each (NODE_ENV=production, LOG_LEVEL=warn), each with its own database,
 * measured in alternation A B A B … (BENCH_PROJECTS_ROUNDS, default 3) so machine noise hits both alike.
 *  - task read: autocannon, 50 connections, BENCH_PROJECTS_SECONDS (default 5) per round, a task of a
 *    personal image (the rule reads the same one batched statement, now joined with the image);
 *  - uploads: a 16×16 PNG, 16 in flight, BENCH_PROJECTS_UPLOADS (default 600) per round.
 *
 *   git archive <base> | tar -x -C /tmp/base-src && (cd /tmp/base-src && ln -s $PWD/node_modules && npx tsc -p tsconfig.build.json --outDir /tmp/base-build)
 *   npx nest build && BENCH_BASE_MAIN=/tmp/base-build/src/main.js NODE_PATH=$PWD/node_modules node dist/bench/projects/run.js
 */
import autocannon from 'autocannon';
import sharp from 'sharp';
import {
  Backend,
  benchEnv,
  f1,
  f3,
  invocation,
  json,
  register,
  runMain,
  startBackend,
  table,
  writeResults,
} from '../common/harness';

const SECONDS = Number(process.env.BENCH_PROJECTS_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_PROJECTS_ROUNDS ?? 3);
const UPLOADS = Number(process.env.BENCH_PROJECTS_UPLOADS ?? 600);
const BASE = process.env.BENCH_BASE_MAIN;

interface Subject {
  label: string;
  api: Backend;
  token: string;
  taskId: string;
}

async function prepare(label: string, main?: string): Promise<Subject> {
  const env = benchEnv(`projects_${label}`);
  const api = await startBackend(
    env,
    'api',
    { QUEUE_NAME: env.queue('q'), LOG_LEVEL: 'warn' },
    `api-${label}`,
    [],
    main,
  );
  const user = await register(api);
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#777' } })
    .png()
    .toBuffer();
  const id = (await upload(api, user.token, png)).id;
  const task = await json<{ taskId: string }>(
    api.request(`/api/images/${id}/segmentation`, { method: 'POST', token: user.token, json: {} }),
    202,
  );
  return { label, api, token: user.token, taskId: task.taskId };
}

async function upload(api: Backend, token: string, png: Buffer): Promise<{ id: number }> {
  const form = new FormData();
  form.append('file', new Blob([png]), 'b.png');
  const res = await fetch(`${api.url}/api/images`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 201) throw new Error(`upload ${res.status}`);
  return (await res.json()) as { id: number };
}

async function taskReads(s: Subject): Promise<number> {
  const r = await autocannon({
    url: `${s.api.url}/api/segmentation/tasks/${s.taskId}`,
    connections: 50,
    duration: SECONDS,
    headers: { authorization: `Bearer ${s.token}` },
  });
  if (r.non2xx) throw new Error(`${s.label}: ${r.non2xx} non-2xx task reads`);
  return r.requests.average;
}

async function uploads(s: Subject, png: Buffer): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < UPLOADS) await upload(s.api, s.token, png);
    }),
  );
  return UPLOADS / ((performance.now() - started) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

runMain(async () => {
  if (!BASE) throw new Error('BENCH_BASE_MAIN (the build without projects) is required');
  const withRule = await prepare('rule');
  const without = await prepare('base', BASE);
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#999' } })
    .png()
    .toBuffer();
  const reads: Record<string, number[]> = { rule: [], base: [] };
  const ups: Record<string, number[]> = { rule: [], base: [] };
  // Warm-up of both, then alternate.
  for (const s of [withRule, without])
    await autocannon({
      url: `${s.api.url}/api/segmentation/tasks/${s.taskId}`,
      connections: 50,
      duration: 1,
      headers: { authorization: `Bearer ${s.token}` },
    });
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of r % 2 === 0 ? [without, withRule] : [withRule, without]) {
      reads[s.label].push(await taskReads(s));
      ups[s.label].push(await uploads(s, png));
      console.log(
        `round ${r + 1} ${s.label}: task reads ${f1(reads[s.label][r])}/s, uploads ${f1(ups[s.label][r])}/s`,
      );
    }
  }
  const rr = median(reads.rule) / median(reads.base);
  const ur = median(ups.rule) / median(ups.base);
  const body = [
    `One \`api\` process per build, each with its own database; ${ROUNDS} alternating rounds; medians. Task read: autocannon, 50 connections, ${SECONDS} s per round. Uploads: 16×16 PNG, 16 in flight, ${UPLOADS} per round.`,
    '',
    table(
      ['', 'without the rule (base build)', 'with the rule', 'with / without', 'goal'],
      [
        [
          '`GET /api/segmentation/tasks/:id` req/s',
          f1(median(reads.base)),
          f1(median(reads.rule)),
          f3(rr),
          `cost ≤ 10 % (ratio ≥ 0.909): ${rr >= 1 / 1.1 ? 'met' : 'NOT met'}`,
        ],
        ['`POST /api/images` uploads/s', f1(median(ups.base)), f1(median(ups.rule)), f3(ur), '—'],
      ],
    ),
    '',
    `Rounds (req/s): task read base ${reads.base.map(f1).join(', ')}; rule ${reads.rule.map(f1).join(', ')}. Uploads base ${ups.base.map(f1).join(', ')}; rule ${ups.rule.map(f1).join(', ')}.`,
  ].join('\n');
  console.log(body);
  writeResults(
    'projects',
    'Projects access rule: task read and upload with and without it (issue 19)',
    invocation('npx nest build && BENCH_BASE_MAIN=/tmp/base-build/src/main.js'),
    body,
  );
});
