import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { noisePng, uploadFile } from '../support/big-upload';
import { startProcess, stopAllProcesses } from '../support/processes';
import { S3TestServer } from '../support/s3-server';
import { STORAGE_DRIVERS, storageFor, StorageUnderTest } from '../support/storage-drivers';

/** A figure (kB) of /proc/<pid>/status: VmRSS now, VmHWM the peak resident set since the process started. */
function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]);
}

/** Bound on the api's peak RSS growth for one upload, whatever the file's size (MB). */
const BOUND_MB = 16;
/** How much more a 40 MB upload may raise the peak than a 20 MB one (MB): well under the 20 MB between them. */
const SIZE_SLOPE_MB = 6;

/**
 * CONTRACT §9: an upload is streamed to the store, so the api's memory does not grow with the file.
 * Each upload is measured on an api process of its own (the test's client, the S3 server and its proxy
 * are elsewhere), warmed up by an 8 MB upload (heaps, pools and part buffers), from its peak resident
 * set before to its peak after (VmHWM, kept by the kernel, so no sampling interval can miss the peak).
 *
 * Measured on 2026-12-06 (6 runs, local / s3): 20 MB 2.4–3.6 / 5.6–6.5 MB, 40 MB 4.9–6.3 / 7.6–8.5 MB
 * (the 40 MB one 1.8–3.0 MB above the 20 MB one: wider rows in the decode check). Before the fix
 * 40 MB took 28–30 / 58–68 MB: the request body's chunks (Node's HTTP parser copies each into a Buffer
 * of its own) piling up until a young-generation GC, and with s3 lib-storage's copy of every part
 * (src/common/young-gc.ts, src/storage/s3-put-file.ts); the test fails without either (20/40 MB: no
 * scavenges 22/29 MB local, lib-storage 42/57 MB s3). The rest is the decode check (2 MB at 2 600 pixels wide,
 * 4 MB at 3 700: libvips' rows) and with s3 the SDK's requests.
 */
describe.each(STORAGE_DRIVERS)('uploads with STORAGE_DRIVER=%s, api in its own process', (driver) => {
  let s3: S3TestServer | undefined;
  let storage: StorageUnderTest;
  let dir: string;
  const growth = new Map<number, number>();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'big-upload-'));
    if (driver === 's3') s3 = await new S3TestServer().start();
    storage = storageFor(driver, 'upload-memory', s3);
  });
  afterAll(async () => {
    await stopAllProcesses();
    await s3?.stop();
    storage?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([20, 40])(
    `a %i MB upload is stored whole; the api’s peak RSS grows at most ${BOUND_MB} MB`,
    async (mb) => {
      const api = await startProcess({
        role: 'api',
        env: { ...storage.env, QUEUE_NAME: `${process.env.QUEUE_NAME}_mem_${driver}_${mb}` },
      });
      const { token } = await api.register();
      const warm = await noisePng(dir, 8);
      expect((await uploadFile(api.url, token, warm)).status).toBe(201);
      const file = await noisePng(dir, mb);
      const size = statSync(file).size;
      expect(size).toBeGreaterThan(mb * 1024 * 1024);

      const before = Math.max(procKb(api.pid, 'VmHWM'), procKb(api.pid, 'VmRSS'));
      const res = await uploadFile(api.url, token, file);
      const peak = procKb(api.pid, 'VmHWM');
      expect(res.status).toBe(201);
      const image = JSON.parse(res.body) as { id: number; sizeBytes: number };
      expect(image.sizeBytes).toBe(size);
      const growthMb = Math.max(0, peak - before) / 1024;
      growth.set(mb, growthMb);
      process.stdout.write(
        `[${driver}] ${mb} MB upload: api peak RSS growth ${growthMb.toFixed(1)} MB (file ${(size / 1048576).toFixed(1)} MB)\n`,
      );

      const stored = await api.request(`/api/images/${image.id}/file`, { token, method: 'HEAD' });
      expect(stored.status).toBe(200);
      expect(Number(stored.headers.get('content-length'))).toBe(size);
      await api.stop();
      expect(growthMb).toBeLessThanOrEqual(BOUND_MB);
    },
    120_000,
  );

  it('twice the file does not take more memory', () => {
    expect(growth.size).toBe(2);
    expect(growth.get(40)! - growth.get(20)!).toBeLessThan(SIZE_SLOPE_MB);
  });
});
