import 'reflect-metadata';
import { ConfigValidationError } from '../config/validate';
import { type SegmenterEnv, validateSegmenterEnv } from './segmenter.config';

/**
 * Entry point of the reference segmentation service (`npm run segmenter:prod`). It reads only its own
 * variables (`segmenter.config.ts`). Invalid configuration: one line on stderr, exit 1. SIGTERM/SIGINT:
 * one line when shutdown starts, stop taking requests, let those in flight finish, stop the worker
 * threads, one line when it is complete, exit 0 (exit 1 if that takes longer than SHUTDOWN_TIMEOUT).
 */
let shuttingDown = false;

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;

async function main(): Promise<void> {
  const env = loadEnv();
  const log = lineLogger(env.LOG_LEVEL);
  // Imported after validation so that no module reads an invalid configuration.
  const { createSegmenterApp } = await import('./segmenter.app');
  const app = await createSegmenterApp(env.LOG_LEVEL);

  const stop = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const startedAt = Date.now();
    log('info', 'shutdown started', { signal, timeoutMs: env.SHUTDOWN_TIMEOUT });
    setTimeout(() => {
      log('error', 'shutdown timed out', { signal, durationMs: Date.now() - startedAt });
      process.exit(1);
    }, env.SHUTDOWN_TIMEOUT).unref();
    try {
      await app.close();
      log('info', 'shutdown complete', { signal, durationMs: Date.now() - startedAt });
      process.exit(0);
    } catch (err) {
      log('error', 'shutdown failed', { err: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  try {
    await app.listen({ port: env.SEGMENTER_PORT, host: '0.0.0.0' });
  } catch (err) {
    // A signal during start-up stops the workers being started; stop() then owns the exit.
    if (shuttingDown) return;
    throw err;
  }
  log('info', 'segmenter listening', { port: env.SEGMENTER_PORT });
}

function loadEnv(): SegmenterEnv {
  try {
    return validateSegmenterEnv(process.env);
  } catch (err) {
    if (err instanceof ConfigValidationError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

type Level = 'info' | 'error';

/** One JSON line per event (errors on stderr), below LOG_LEVEL dropped. */
function lineLogger(min: SegmenterEnv['LOG_LEVEL']) {
  return (level: Level, msg: string, fields: Record<string, unknown>): void => {
    if (LEVELS[level] < LEVELS[min]) return;
    const stream = level === 'error' ? process.stderr : process.stdout;
    stream.write(
      JSON.stringify({
        level,
        time: new Date().toISOString(),
        pid: process.pid,
        context: 'SegmenterMain',
        msg,
        ...fields,
      }) + '\n',
    );
  };
}

main().catch((err: unknown) => {
  if (shuttingDown) return;
  process.stderr.write(
    JSON.stringify({
      level: 'error',
      time: new Date().toISOString(),
      context: 'SegmenterMain',
      msg: 'start-up failed',
      err: err instanceof Error ? err.message : String(err),
    }) + '\n',
  );
  process.exit(1);
});
