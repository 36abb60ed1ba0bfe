import { spawn } from 'node:child_process';

/**
 * Calls an exported async function of a TypeScript module in a child process, compiled on the fly by
 * @swc/core, and resolves once that process has exited. Jest runs test code inside a vm context where
 * numeric code (Math builtins, typed-array loops) is several times slower than in plain Node; the child
 * runs it at full speed.
 *
 * A child process, not a worker thread: the modules it loads (sharp through the segmenter's decode, with
 * libvips' process-wide state, and OpenCV's WASM) never share the Jest process, which runs every suite
 * in band. With a worker thread, the first sharp call of the next test once waited forever in a full CI
 * run (`decoding › reads 8-bit grey PNG`), right after the worker was terminated without waiting for it.
 */
const BOOTSTRAP = `
const { transformSync } = require(process.env.SWC_PATH);
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
process.once('message', ({ modulePath, exportName, args }) => {
  Promise.resolve()
    .then(() => require(modulePath)[exportName](...args))
    .then((value) => ({ ok: true, value }), (err) => ({ ok: false, error: String((err && err.stack) || err) }))
    .then((reply) => process.send(reply, () => process.exit(0)));
});
`;

type Reply<T> = { ok: true; value: T } | { ok: false; error: string };

export function runTsInChild<T>(modulePath: string, exportName: string, args: unknown[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', BOOTSTRAP], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced', // structured clone, as between threads: NaN and Infinity survive
      env: { ...process.env, SWC_PATH: require.resolve('@swc/core') },
    });
    let reply: Reply<T> | undefined;
    child.once('message', (m: Reply<T>) => (reply = m));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!reply) reject(new Error(`child exited (${signal ?? code}) without an answer`));
      else if (reply.ok) resolve(reply.value);
      else reject(new Error(reply.error));
    });
    child.send({ modulePath, exportName, args });
  });
}
