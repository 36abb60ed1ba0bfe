import type { Cluster, Redis } from 'ioredis';

/** The members of an ioredis 5 client (Commander) this module uses; `ioredis` is pinned by the lockfile. */
interface ScriptingClient {
  scriptsSet: Record<string, unknown>;
  addedBuiltinSet: Set<string>;
  defineCommand(name: string, definition: unknown): void;
  addBuiltinCommand(name: string): void;
  pipeline(commands?: unknown[][]): PipelineLike;
  [method: string]: unknown;
}
interface PipelineLike {
  addBatch(commands: unknown[][]): unknown;
}

const NO_SCRIPTS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const NO_BUILTINS: ReadonlySet<string> = new Set<string>();
const APPLIED = Symbol('spheroseg.scriptPipelines');

/**
 * Makes `client.pipeline()` cheap on a client with many Lua scripts.
 *
 * ioredis's Pipeline constructor copies every script method of its client (and its `…Buffer` twin)
 * onto each new pipeline. The command connection carries about 30 scripts (Bull's 26 and the app's
 * own), and with auto-pipelining every event-loop turn that sends a command makes a pipeline: ≈ 11 µs
 * each instead of ≈ 2.3 µs (`bench/redis-pipeline`), about 5 % of a worker's main thread at a 50 ms ML
 * service.
 *
 * Pipelines of this client are built by ioredis's own constructor, shown a client with no scripts for
 * that moment (synchronously, so nothing else can see it), as instances of a subclass whose prototype
 * holds the client's script methods, made once and again only after a script is defined. The methods
 * are the client's own, which send through whatever `this` they are called on, as the copied ones did;
 * a script the server lost (NOSCRIPT) is reloaded per command as before. `multi()` is left as it is.
 */
export function shareScriptMethods(client: Redis | Cluster): void {
  const c = client as unknown as ScriptingClient & { [APPLIED]?: true };
  if (c[APPLIED]) return;
  c[APPLIED] = true;
  const Pipeline = (c.pipeline.call(c) as object).constructor as new (client: unknown) => PipelineLike;
  // A subclass per client holds its script methods on its prototype (a plain function as `new.target`
  // of ioredis's class constructor would send V8 down a slow path: ≈ 7.5 µs per pipeline).
  let Made: (new (client: unknown) => PipelineLike) | null = null;
  const withScripts = (): new (client: unknown) => PipelineLike => {
    const sub = class extends Pipeline {};
    const proto = sub.prototype as unknown as Record<string, unknown>;
    for (const name of [...Object.keys(c.scriptsSet), ...c.addedBuiltinSet]) {
      proto[name] = c[name];
      proto[`${name}Buffer`] = c[`${name}Buffer`];
    }
    return sub;
  };
  const defineCommand = c.defineCommand;
  c.defineCommand = function (this: ScriptingClient, name: string, definition: unknown) {
    Made = null;
    return defineCommand.call(this, name, definition);
  };
  const addBuiltinCommand = c.addBuiltinCommand;
  c.addBuiltinCommand = function (this: ScriptingClient, name: string) {
    Made = null;
    return addBuiltinCommand.call(this, name);
  };
  c.pipeline = function (this: ScriptingClient, commands?: unknown[][]) {
    Made ??= withScripts();
    const scripts = this.scriptsSet;
    const builtins = this.addedBuiltinSet;
    this.scriptsSet = NO_SCRIPTS;
    this.addedBuiltinSet = NO_BUILTINS as Set<string>;
    let pipeline: PipelineLike;
    try {
      pipeline = new Made(this);
    } finally {
      this.scriptsSet = scripts;
      this.addedBuiltinSet = builtins;
    }
    if (Array.isArray(commands)) pipeline.addBatch(commands);
    return pipeline;
  };
}
