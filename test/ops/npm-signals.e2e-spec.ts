import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeLoopbackPort } from '../support/pg-instance';
import { type NpmRun, httpStatus, npmRun, stillRuns, waitFor } from './npm-run';

/**
 * CONTRACT §1: a SIGTERM sent to the `npm run` process itself reaches node, which shuts down
 * gracefully (exit 0 within SHUTDOWN_TIMEOUT) and leaves no orphan; each process logs one structured
 * line when shutdown starts and one when it is complete. (npm runs a script through `sh -c`; without
 * `exec` the shell takes the signal and dies, and node keeps serving, orphaned.)
 */
const SHUTDOWN_TIMEOUT = 10_000;
const started: Tracked[] = [];

afterEach(() => {
  // Whatever a failed assertion left behind is stopped (only processes this file started).
  for (const run of started.splice(0)) {
    const node = run.nodeDescendantAtStart;
    if (node && stillRuns(node, 'main.js')) process.kill(node, 'SIGKILL');
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
  }
});

type Tracked = NpmRun & { nodeDescendantAtStart?: number };

async function startAndTerminate(script: string, env: NodeJS.ProcessEnv, liveUrl: string, entry: string) {
  const run: Tracked = npmRun(script, env);
  started.push(run);
  await waitFor(
    async () => run.child.exitCode === null && (await httpStatus(liveUrl)) === 200,
    60_000,
    `${script} live`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; logs:\n${run.logs()}`);
  });
  const node = run.nodeDescendant();
  run.nodeDescendantAtStart = node;
  expect(node).toBeDefined();
  expect(stillRuns(node!, entry)).toBe(true);

  const sentAt = Date.now();
  expect(run.child.kill('SIGTERM')).toBe(true);
  const exit = await Promise.race([
    run.exited,
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), SHUTDOWN_TIMEOUT + 5000)),
  ]);
  const tookMs = Date.now() - sentAt;
  expect({ exit, logs: exit === 'timeout' || exit.code !== 0 ? run.logs() : '' }).toEqual({
    exit: { code: 0, signal: null },
    logs: '',
  });
  expect(tookMs).toBeLessThan(SHUTDOWN_TIMEOUT + 2000);
  // node itself is gone, not left behind serving.
  await waitFor(() => !stillRuns(node!, entry), 2000, 'node to be gone');
  expect(await httpStatus(liveUrl)).toBe(0);

  const lines = run.jsonLines();
  const began = lines.filter((l) => l.msg === 'shutdown started');
  const ended = lines.filter((l) => l.msg === 'shutdown complete');
  expect({ began: began.length, ended: ended.length }).toEqual({ began: 1, ended: 1 });
  expect(began[0]).toMatchObject({ signal: 'SIGTERM' });
  expect(ended[0]).toMatchObject({ signal: 'SIGTERM', durationMs: expect.any(Number) });
  expect(lines.indexOf(began[0])).toBeLessThan(lines.indexOf(ended[0]));
  return { lines, began: began[0], ended: ended[0] };
}

describe.each(['api', 'worker'] as const)('npm run start:prod (APP_ROLE=%s)', (role) => {
  it('SIGTERM to npm shuts node down gracefully: exit 0, no orphan, shutdown started/complete logged', async () => {
    const port = await freeLoopbackPort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'production',
      APP_ROLE: role,
      PORT: String(port),
      LOG_LEVEL: 'info',
      DATABASE_POOL_MAX: '4',
      SHUTDOWN_TIMEOUT: String(SHUTDOWN_TIMEOUT),
      SHUTDOWN_DRAIN_DELAY: '200',
    };
    delete env.NODE_OPTIONS;
    const { began, ended } = await startAndTerminate(
      'start:prod',
      env,
      `http://127.0.0.1:${port}/api/health/live`,
      'dist/src/main.js',
    );
    expect(began).toMatchObject({ level: 30, role, timeoutMs: SHUTDOWN_TIMEOUT });
    expect(ended).toMatchObject({ level: 30, role });
  });
});

describe('npm run segmenter:prod', () => {
  it('SIGTERM to npm shuts the segmenter down gracefully: exit 0, no orphan, shutdown started/complete logged', async () => {
    const port = await freeLoopbackPort();
    // Only the segmenter's own variables, in production: nothing of the backend's.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      SEGMENTER_PORT: String(port),
      SEGMENTER_THREADS: '1',
      UPLOAD_DIR: mkdtempSync(path.join(tmpdir(), 'spheroseg-ops-seg-')),
      SHUTDOWN_TIMEOUT: String(SHUTDOWN_TIMEOUT),
      LOG_LEVEL: 'info',
    };
    const { began } = await startAndTerminate(
      'segmenter:prod',
      env,
      `http://127.0.0.1:${port}/health`,
      'dist/src/segmenter/main.js',
    );
    expect(began).toMatchObject({ level: 'info', timeoutMs: SHUTDOWN_TIMEOUT });
  });
});
