/**
 * Baseline consumer for bench/pipeline: a bare Bull worker (forked by run.ts) with the same Redis,
 * its own queue name, `concurrency` jobs at once, whose processor only sleeps `sleepMs` (0: answers at once). Reports its
 * completed count to the parent every 5 ms while it changes.
 */
import Bull from 'bull';

const [redisUrl, prefix, name, concurrency, sleepMs] = process.argv.slice(2);
const queue = new Bull(name, redisUrl, { prefix });
let done = 0;
let sent = 0;
queue.on('completed', () => done++);
const ms = Number(sleepMs);
// sleepMs 0: the handler answers at once (the anchor of the pipeline's instant-stub drain).
void queue.process('segment', Number(concurrency), () => (ms > 0 ? new Promise((r) => setTimeout(() => r('ok'), ms)) : Promise.resolve('ok')));
setInterval(() => {
  if (done !== sent) {
    sent = done;
    process.send?.({ done });
  }
}, 5).unref();
void queue.isReady().then(() => process.send?.({ ready: true }));
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop) void queue.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
