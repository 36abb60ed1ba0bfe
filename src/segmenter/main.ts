import 'reflect-metadata';
import { ConfigValidationError, type Env, validateEnv } from '../config/env.schema';

/**
 * Entry point of the reference segmentation service (`npm run segmenter:prod`). Invalid configuration:
 * one line on stderr, exit 1. SIGTERM/SIGINT: stop taking requests, let those in flight finish,
 * stop the worker threads, exit 0 (exit 1 if that takes longer than SHUTDOWN_TIMEOUT).
 */
let shuttingDown = false;

async function main(): Promise<void> {
  const env = loadEnv();
  // Imported after validation so that no module reads an invalid configuration.
  const { createSegmenterApp } = await import('./segmenter.app');
  const app = await createSegmenterApp();

  const stop = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log('info', 'shutting down', { signal });
    setTimeout(() => {
      log('error', 'shutdown timed out', { signal });
      process.exit(1);
    }, env.SHUTDOWN_TIMEOUT).unref();
    try {
      await app.close();
      process.exit(0);
    } catch (err) {
      log('error', 'shutdown failed', { err: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: env.SEGMENTER_PORT, host: '0.0.0.0' });
  log('info', 'segmenter listening', { port: env.SEGMENTER_PORT });
}

function loadEnv(): Env {
  try {
    return validateEnv(process.env);
  } catch (err) {
    if (err instanceof ConfigValidationError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

function log(level: 'info' | 'error', msg: string, fields: Record<string, unknown>): void {
  const stream = level === 'error' ? process.stderr : process.stdout;
  stream.write(
    JSON.stringify({ level, time: new Date().toISOString(), context: 'SegmenterMain', msg, ...fields }) +
      '\n',
  );
}

main().catch((err: unknown) => {
  // A signal during start-up stops the workers being started; stop() then owns the exit.
  if (shuttingDown) return;
  log('error', 'start-up failed', { err: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
