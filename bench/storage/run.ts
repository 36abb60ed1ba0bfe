/**
 * Storage drivers (issue 22): upload and file-read throughput with STORAGE_DRIVER=local against
 * STORAGE_DRIVER=s3 (s3rver on 127.0.0.1, the store the tests use), in one run, one `api` process
 * from the build per driver, same database:
 *  (a) uploads of a 512×512 noise PNG (≈ 770 KiB, so staged and streamed, not held in memory), 8 in flight;
 *  (b) `GET /api/images/:id/file` of those images, 16 in flight (whole file, Bearer);
 *  (c) one ≈ 20 MiB upload: seconds, and the api's peak RSS growth (/proc VmRSS every 20 ms).
 *
 *   npx nest build && node dist/bench/storage/run.js
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { S3TestServer } from '../../test/support/s3-server';
import {
  benchEnv,
  f1,
  invocation,
  register,
  runMain,
  startBackend,
  table,
  writeResults,
} from '../common/harness';

const UPLOADS = Number(process.env.BENCH_STORAGE_UPLOADS ?? 150);
const READS = Number(process.env.BENCH_STORAGE_READS ?? 600);
const MB = 1024 * 1024;

const rssBytes = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
};

async function upload(url: string, token: string, data: Buffer): Promise<{ status: number; id?: number }> {
  const form = new FormData();
  form.append('file', new Blob([data]), 'b.png');
  const res = await fetch(`${url}/api/images`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${token}` },
  });
  const body = (await res.json()) as { id?: number };
  return { status: res.status, id: body.id };
}

async function pool(n: number, width: number, job: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await job(next++);
    }),
  );
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const env = benchEnv('storage');
  const s3 = await new S3TestServer().start();
  const noise = (side: number) =>
    sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
      .png({ compressionLevel: 0 })
      .toBuffer();
  const png = await noise(512);
  const big = await noise(2600);
  const rows: Array<Array<string | number>> = [];
  for (const driver of ['local', 's3'] as const) {
    const extra: Record<string, string> =
      driver === 's3' ? s3.env(`bench-${env.tag.slice(-8)}`) : { STORAGE_DRIVER: 'local' };
    const api = await startBackend(env, 'api', extra, `api-${driver}`);
    const { token } = await register(api);
    for (let i = 0; i < 10; i++) await upload(api.url, token, png); // warm-up
    const ids: number[] = [];
    let failed = 0;
    const upSeconds = await pool(UPLOADS, 8, async () => {
      const r = await upload(api.url, token, png);
      if (r.status === 201 && r.id) ids.push(r.id);
      else failed++;
    });
    let readBytes = 0;
    const readSeconds = await pool(READS, 16, async (i) => {
      const res = await fetch(`${api.url}/api/images/${ids[i % ids.length]}/file`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const b = await res.arrayBuffer();
      if (res.status === 200) readBytes += b.byteLength;
      else failed++;
    });
    const before = rssBytes(api.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(api.pid))), 20);
    const t0 = performance.now();
    const bigStatus = (await upload(api.url, token, big)).status;
    const bigSeconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    await api.stop();
    const line = [
      driver,
      `${f1(UPLOADS / upSeconds)} /s (${f1((UPLOADS * png.length) / MB / upSeconds)} MiB/s)`,
      `${f1(READS / readSeconds)} /s (${f1(readBytes / MB / readSeconds)} MiB/s)`,
      `${bigStatus}, ${f1(bigSeconds)} s`,
      `${f1((peak - before) / MB)} MiB`,
      failed,
    ];
    console.log(line.join(' | '));
    rows.push(line);
  }
  await s3.stop();
  writeResults(
    'storage',
    'Storage drivers: local vs s3 (issue 22)',
    invocation(),
    [
      `One \`api\` process per driver (NODE_ENV=production), the same PostgreSQL and Redis; \`s3\` is s3rver (a Node S3 emulator writing to local disk, behind the tests' pass-through proxy) on 127.0.0.1. ${UPLOADS} uploads of a 512×512 noise PNG (${f1(png.length / 1024)} KiB) 8 in flight, then ${READS} whole-file reads 16 in flight, then one ${f1(big.length / MB)} MiB PNG.`,
      '',
      table(
        ['driver', 'uploads', 'file reads', 'large upload', 'api RSS growth, large upload', 'failed'],
        rows,
      ),
      '',
      'The machine was shared with other work (2 cores, several other sessions running tests) while this ran: absolute figures are noisy; the two drivers ran back to back in one run. With `s3`, an upload is received and inspected in a local scratch file exactly as with `local`, then streamed to the store in 5 MiB parts (2 in flight), so its cost over `local` is the copy to the store; a read is proxied from the store (one GetObject per request). s3rver itself is slow (it is a test emulator, in Node, on the same cores): a real MinIO or S3 will be faster.',
    ].join('\n'),
  );
}

runMain(main);
