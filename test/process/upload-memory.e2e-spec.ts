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

/**
 * CONTRACT §9: an upload is streamed to the store. The api runs in a process of its own (the test's
 * client, the S3 server and its proxy are elsewhere), and its peak resident set (VmHWM, kept by the
 * kernel, so no sampling interval can miss the peak) is read before and after a 40 MB upload.
 *
 * NOT MET, so not asserted: measured this way on 2026-12-06 the api's peak grew 28 MB with `local`
 * (the decode check of the 40 MB PNG) and 58 MB with `s3` (more than the file: the s3 upload path
 * holds more than its parts in flight). The earlier in-process test sampled RSS every 5 ms in the Jest
 * process and missed those peaks. This test prints the figure and checks that the file is stored whole;
 * the bound is the open point of issue 22.
 */
describe.each(STORAGE_DRIVERS)('a 40 MB upload with STORAGE_DRIVER=%s, api in its own process', (driver) => {
  let s3: S3TestServer | undefined;
  let storage: StorageUnderTest;
  let dir: string;

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

  it('is stored whole; the api’s peak RSS growth is printed', async () => {
    const api = await startProcess({
      role: 'api',
      env: { ...storage.env, QUEUE_NAME: `${process.env.QUEUE_NAME}_mem_${driver}` },
    });
    const { token } = await api.register();
    const warm = await noisePng(dir, 8);
    expect((await uploadFile(api.url, token, warm)).status).toBe(201); // heaps, pools and parts warmed up
    const file = await noisePng(dir, 40);
    const size = statSync(file).size;
    expect(size).toBeGreaterThan(40 * 1024 * 1024);

    const before = Math.max(procKb(api.pid, 'VmHWM'), procKb(api.pid, 'VmRSS'));
    const res = await uploadFile(api.url, token, file);
    const peak = procKb(api.pid, 'VmHWM');
    expect(res.status).toBe(201);
    const image = JSON.parse(res.body) as { id: number; sizeBytes: number };
    expect(image.sizeBytes).toBe(size);
    const growthMb = Math.max(0, peak - before) / 1024;
    process.stdout.write(
      `[${driver}] 40 MB upload: api peak RSS growth ${growthMb.toFixed(1)} MB (file ${(size / 1048576).toFixed(1)} MB)\n`,
    );

    const stored = await api.request(`/api/images/${image.id}/file`, { token, method: 'HEAD' });
    expect(stored.status).toBe(200);
    expect(Number(stored.headers.get('content-length'))).toBe(size);
  }, 120_000);
});
