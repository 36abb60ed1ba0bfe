import 'reflect-metadata';
import { ConfigValidationError, validateEnv } from './config/env.schema';
import { ShutdownState } from './common/shutdown-state';
import { redactSecrets } from './common/redact';
import pino, { type Logger } from 'pino';

/**
 * Entry point of the backend. APP_ROLE chooses what runs (CONTRACT §1). On SIGTERM/SIGINT readiness
 * turns 503 at once, the process stops taking requests and jobs, finishes or hands back active jobs,
 * closes its pools and exits 0 within SHUTDOWN_TIMEOUT.
 */
async function main(): Promise<void> {
  let env;
  try {
    env = validateEnv(process.env);
  } catch (err) {
    if (err instanceof ConfigValidationError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const processLog = pino({ level: env.LOG_LEVEL, base: { pid: process.pid, role: env.APP_ROLE } });
  logProcessWarnings(processLog.child({ context: 'Process' }));
  // Imported after validation so that no module reads an invalid configuration.
  const { createApp } = await import('./app.factory');
  const app = await createApp({ role: env.APP_ROLE });
  const shutdown = app.get(ShutdownState);
  // The two shutdown lines are written by the entry point, whatever the modules log meanwhile.
  const lifecycle = processLog.child({ context: 'Shutdown' });

  let closing = false;
  const stop = async (signal: string) => {
    if (closing) return;
    closing = true;
    shutdown.markShuttingDown();
    const startedAt = Date.now();
    lifecycle.info({ signal, timeoutMs: env.SHUTDOWN_TIMEOUT }, 'shutdown started');
    const deadline = setTimeout(() => {
      lifecycle.error({ signal, durationMs: Date.now() - startedAt }, 'shutdown timed out');
      process.exit(1);
    }, env.SHUTDOWN_TIMEOUT);
    deadline.unref();
    try {
      // Keep serving briefly (readiness already 503, responses carry `Connection: close`) so that
      // connections already in the accept queue are answered, not reset, when the listener closes.
      const drain = Math.min(env.SHUTDOWN_DRAIN_DELAY, Math.floor(env.SHUTDOWN_TIMEOUT / 3));
      if (drain > 0) await new Promise((resolve) => setTimeout(resolve, drain));
      await app.close();
      lifecycle.info({ signal, durationMs: Date.now() - startedAt }, 'shutdown complete');
      process.exit(0);
    } catch (err) {
      lifecycle.error({ signal, err: redactSecrets((err as Error).message) }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  await app.listen({ port: env.PORT, host: '0.0.0.0' });
}

main().catch((err: unknown) => {
  const message = redactSecrets(err instanceof Error ? err.message : String(err));
  process.stderr.write(JSON.stringify({ level: 'fatal', msg: 'start-up failed', err: message }) + '\n');
  process.exit(1);
});

/**
 * Node prints process warnings (deprecations; the AWS SDK's notice that its 2027 releases need Node 22,
 * on every start with STORAGE_DRIVER=s3) to stderr as several plain-text lines. Here each becomes one
 * structured `warn` line instead, like every other line of the process.
 */
function logProcessWarnings(log: Logger): void {
  process.removeAllListeners('warning'); // Node's own printer
  process.on('warning', (w: Error & { code?: string }) =>
    log.warn({ warning: w.name, code: w.code, detail: redactSecrets(w.message) }, 'process warning'),
  );
}
