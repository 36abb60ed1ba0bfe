import { Worker } from 'node:worker_threads';

/**
 * Calls an exported async function of a TypeScript module in a worker thread, compiled on the fly by
 * @swc/core. Jest runs test code inside a vm context where numeric code (Math builtins, typed-array
 * loops) is several times slower than in plain Node; a worker thread runs it at full speed.
 */
const BOOTSTRAP = `
const { parentPort, workerData } = require('node:worker_threads');
const { transformSync } = require(workerData.swcPath);
const fs = require('node:fs');
require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    swcrc: false,
    jsc: { parser: { syntax: 'typescript', decorators: true }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
Promise.resolve()
  .then(() => require(workerData.modulePath)[workerData.exportName](...workerData.args))
  .then((value) => parentPort.postMessage({ ok: true, value }), (err) => parentPort.postMessage({ ok: false, error: String(err && err.stack || err) }));
`;

export function runTsInWorker<T>(modulePath: string, exportName: string, args: unknown[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: { modulePath, exportName, args, swcPath: require.resolve('@swc/core') },
    });
    worker.once('message', (reply: { ok: true; value: T } | { ok: false; error: string }) => {
      void worker.terminate();
      if (reply.ok) resolve(reply.value);
      else reject(new Error(reply.error));
    });
    worker.once('error', reject);
  });
}
