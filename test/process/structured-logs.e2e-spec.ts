import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { noisePng, uploadFile } from '../support/big-upload';
import { startProcess, stopAllProcesses } from '../support/processes';
import { S3TestServer } from '../support/s3-server';
import { STORAGE_DRIVERS, storageFor, StorageUnderTest } from '../support/storage-drivers';

/** Every non-empty line of a process's output, parsed; a line that is not a JSON object fails the test. */
function jsonLines(text: string, stream: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`a ${stream} line is not JSON: ${line}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error(`not an object: ${line}`);
      return parsed as Record<string, unknown>;
    });
}

/**
 * Logs are JSON lines, from start to exit, on stdout and stderr alike, with either storage driver: a
 * warning Node itself would print as plain text (the AWS SDK's notice that its releases after January
 * 2027 need Node 22, emitted when the s3 client is made on Node 20) is one structured `warn` line.
 */
describe.each(STORAGE_DRIVERS)('an api process with STORAGE_DRIVER=%s logs only JSON lines', (driver) => {
  let s3: S3TestServer | undefined;
  let storage: StorageUnderTest;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'structured-logs-'));
    if (driver === 's3') s3 = await new S3TestServer().start();
    storage = storageFor(driver, 'structured-logs', s3);
  });
  afterAll(async () => {
    await stopAllProcesses();
    await s3?.stop();
    storage?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('from start-up through an upload to a graceful exit', async () => {
    const api = await startProcess({
      role: 'api',
      env: { ...storage.env, LOG_LEVEL: 'info', QUEUE_NAME: `${process.env.QUEUE_NAME}_logs_${driver}` },
    });
    const { token } = await api.register();
    const res = await uploadFile(api.url, token, await noisePng(dir, 0.01));
    expect(res.status).toBe(201);
    api.kill('SIGTERM');
    expect(await api.waitExit()).toEqual({ code: 0, signal: null });

    const out = jsonLines(api.stdout(), 'stdout');
    const err = jsonLines(api.stderr(), 'stderr');
    const all = [...out, ...err];
    expect(all.map((l) => l.msg)).toEqual(expect.arrayContaining(['request completed', 'shutdown complete']));
    const warnings = all.filter((l) => l.msg === 'process warning');
    // On Node 20 (the pinned runtime) the s3 client's notice is there, as one structured line.
    if (driver === 's3' && Number(process.versions.node.split('.')[0]) < 22) {
      expect(warnings).toEqual([
        expect.objectContaining({
          level: 40,
          context: 'Process',
          detail: expect.stringMatching(/require node >=22/),
        }),
      ]);
    }
  });
});
