import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeLoopbackPort } from '../support/pg-instance';
import { REPO_ROOT, httpStatus, waitFor } from './npm-run';

/**
 * CONTRACT §1: the reference segmenter is deployed on its own and reads only its own variables
 * (SEGMENTER_*, UPLOAD_DIR, MAX_IMAGE_PIXELS, SHUTDOWN_TIMEOUT, NODE_ENV, LOG_LEVEL): it starts in
 * production without JWT_SECRET, a database or Redis — as docker-compose's and Kubernetes' `ml` run it.
 */
const MAIN = path.join(REPO_ROOT, 'dist/src/segmenter/main.js');

function run(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (logs += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (logs += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, logs: () => logs, exited };
}

const cleanEnv = (vars: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  ...vars,
});

describe('reference segmenter, own configuration', () => {
  it('starts with NODE_ENV=production and a clean environment (no JWT_SECRET, DATABASE_URL, REDIS_URL): /health 200', async () => {
    const port = await freeLoopbackPort();
    const env = cleanEnv({
      NODE_ENV: 'production',
      SEGMENTER_PORT: String(port),
      SEGMENTER_THREADS: '1',
      UPLOAD_DIR: mkdtempSync(path.join(tmpdir(), 'spheroseg-ops-seg-')),
    });
    expect(Object.keys(env).filter((k) => /JWT|DATABASE|REDIS/.test(k))).toEqual([]);
    const p = run(env);
    try {
      await waitFor(
        async () =>
          p.child.exitCode !== null || (await httpStatus(`http://127.0.0.1:${port}/health`)) === 200,
        60_000,
        'segmenter health',
      );
      expect({ exitCode: p.child.exitCode, logs: p.child.exitCode === null ? '' : p.logs() }).toEqual({
        exitCode: null,
        logs: '',
      });
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'healthy', model_loaded: true });
    } finally {
      p.child.kill('SIGTERM');
      expect(await p.exited).toBe(0);
    }
  });

  it.each([
    ['SEGMENTER_THREADS', '-1'],
    ['MAX_IMAGE_PIXELS', 'lots'],
    ['SHUTDOWN_TIMEOUT', 'soon'],
    ['LOG_LEVEL', 'loud'],
  ])('validates its own variable %s: one line naming it, exit 1', async (name, value) => {
    const p = run(
      cleanEnv({ NODE_ENV: 'production', SEGMENTER_PORT: String(await freeLoopbackPort()), [name]: value }),
    );
    expect(await p.exited).toBe(1);
    const lines = p.logs().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^Invalid configuration: ${name} `));
    expect(lines[0]).not.toContain(value);
  });

  it("ignores the backend's variables, even invalid ones (they are not its configuration)", async () => {
    const port = await freeLoopbackPort();
    const p = run(
      cleanEnv({
        NODE_ENV: 'production',
        SEGMENTER_PORT: String(port),
        SEGMENTER_THREADS: '1',
        UPLOAD_DIR: mkdtempSync(path.join(tmpdir(), 'spheroseg-ops-seg-')),
        JWT_SECRET: 'short',
        DATABASE_URL: 'not a url',
        REDIS_URL: 'nope',
        PORT: 'x',
      }),
    );
    try {
      await waitFor(
        async () =>
          p.child.exitCode !== null || (await httpStatus(`http://127.0.0.1:${port}/health`)) === 200,
        60_000,
        'segmenter health',
      );
      expect({ exitCode: p.child.exitCode, logs: p.child.exitCode === null ? '' : p.logs() }).toEqual({
        exitCode: null,
        logs: '',
      });
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
});
