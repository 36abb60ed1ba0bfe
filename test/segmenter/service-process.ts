import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

/** Runs the built segmenter (`dist/src/segmenter/main.js`) as a child process, as production does. */
export const REPO_ROOT = path.resolve(__dirname, '../..');
export const MAIN_JS = path.join(REPO_ROOT, 'dist/src/segmenter/main.js');
const SOURCES = [
  path.join(REPO_ROOT, 'src/segmenter'),
  path.join(REPO_ROOT, 'src/config'),
  path.join(REPO_ROOT, 'src/common'),
];

const newestMtime = (dir: string): number =>
  Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
      const full = path.join(dir, entry.name);
      return entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs;
    }),
  );

const builtMtime = () => {
  try {
    return statSync(MAIN_JS).mtimeMs;
  } catch {
    return -1;
  }
};

/**
 * Compiles the project when the build is missing or older than the segmenter's sources, with the
 * build's own tsconfig (what `npm run build` runs) but without wiping dist/ as `nest build` does.
 */
export function ensureBuilt(): void {
  const sources = Math.max(...SOURCES.map(newestMtime));
  if (builtMtime() >= sources) return;
  // tsc still emits when another module has a type error; what matters is a fresh main.js.
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (builtMtime() < sources) throw new Error(`build failed:\n${build.stdout}\n${build.stderr}`);
}

export interface RunningService {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** A clean environment: only what the service is given, plus PATH/HOME. */
export function serviceEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test', ...vars };
}

export function spawnService(vars: Record<string, string>): RunningService {
  const child = spawn(process.execPath, [MAIN_JS], {
    env: serviceEnv(vars),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, url: `http://127.0.0.1:${vars.SEGMENTER_PORT}`, stderr: () => stderr, exited };
}

export async function waitHealthy(service: RunningService, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null) throw new Error(`segmenter exited: ${service.stderr()}`);
    try {
      if ((await fetch(`${service.url}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('segmenter did not become healthy');
}
