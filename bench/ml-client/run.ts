/**
 * The ML client's own CPU per call: the app's `MlHttpClient` (undici `Pool`) against the `node:http`
 * keep-alive client it replaced (issue 24), side by side in one run, alternating. The ML stub runs in a
 * forked process (so the bench process's CPU is the client's alone), answers the pipeline bench's body
 * (MlStub.results(640, 480)) after `latency` ms; 10 calls in flight, each with its own AbortSignal as the
 * worker sends them. A component figure: the users' setting is bench/pipeline's.
 *
 *   npx nest build && node dist/bench/ml-client/run.js
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { MlHttpClient } from '../../src/ml/ml-http.client';
import { MlStub } from '../../test/support/ml-stub';
import { f1, f2, invocation, runMain, table, writeResults } from '../common/harness';

const CALLS = Number(process.env.BENCH_ML_CALLS ?? 3000);
const IN_FLIGHT = 10;
const ROUNDS = 3;

if (process.argv[2] === 'serve') {
  const body = JSON.stringify({ success: true, results: MlStub.results(640, 480) });
  const latency = Number(process.argv[3]);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, latency),
    );
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as AddressInfo).port));
} else {
  runMain(main);
}

type Call = (signal: AbortSignal) => Promise<unknown>;

/** The client before issue 24's change (src/ml/ml-http.client.ts at 6669f58): node:http, one keep-alive agent. */
function nodeHttpCall(port: number): Call {
  const agent = new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, timeout: 4000, noDelay: true, scheduling: 'lifo' });
  return (signal) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ image_path: '2026/12/a.png', task_id: '0b0f7d1c-0000-4000-8000-000000000000' });
      const req = http.request({
        hostname: '127.0.0.1',
        port,
        path: '/segment',
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        agent,
        signal,
      });
      req.once('error', reject);
      req.once('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      });
      req.end(body);
    });
}

/** CPU µs of this process per call and wall seconds, `CALLS` calls with IN_FLIGHT at once. */
async function measure(call: Call): Promise<{ us: number; s: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let started = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started < CALLS) {
        started++;
        await call(new AbortController().signal);
      }
    }),
  );
  const c = process.cpuUsage(c0);
  return { us: (c.user + c.system) / CALLS, s: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  for (const latency of [20, 0]) {
    const stub = fork(__filename, ['serve', String(latency)]);
    const port = await new Promise<number>((r) => stub.once('message', (p) => r(p as number)));
    const app = new MlHttpClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 10_000 } as never);
    const undici: Call = (signal) => app.segment({ image_path: '2026/12/a.png', task_id: '0b0f7d1c-0000-4000-8000-000000000000' }, signal);
    const old = nodeHttpCall(port);
    await measure(old); // warm-up of both (JIT, connections)
    await measure(undici);
    const a: number[] = [];
    const b: number[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      a.push((await measure(old)).us);
      b.push((await measure(undici)).us);
    }
    const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
    rows.push([`${latency} ms`, a.map(f1).join(', '), b.map(f1).join(', '), f2(mean(b) / mean(a))]);
    console.log(`stub ${latency} ms: node:http ${a.map(f1).join('/')} µs, app client ${b.map(f1).join('/')} µs per call`);
    await app.onApplicationShutdown();
    stub.kill();
  }
  const body = [
    `${CALLS} calls per round, ${IN_FLIGHT} in flight, ${ROUNDS} alternating rounds per client after one warm-up round each; CPU of the bench process (the client alone) from \`process.cpuUsage()\`. The stub is a forked process answering \`MlStub.results(640, 480)\`; the app's client also validates the body (\`parseSegmentBody\`), the old one only parses it. A component figure; the users' setting is the pipeline bench.`,
    '',
    table(['stub latency', 'node:http µs CPU per call (rounds)', 'app client (undici Pool) µs per call (rounds)', 'app / node:http (means)'], rows),
  ].join('\n');
  console.log('\n' + body);
  writeResults('ml-client', 'ML client CPU per call: undici Pool vs node:http', invocation(), body);
}
