import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Gc = (options: { type: 'minor' }) => void;

/**
 * V8's collector, taken once from a throw-away context made while `--expose-gc` is set (the flag is
 * unset right after, so the app's own global gets no `gc`); undefined if this V8 does not offer it.
 */
function collector(): Gc | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as Gc;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Gc) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** Taken at the first upload (a process that never receives one never touches V8's flags). */
let gc: Gc | undefined | null = null;
let sinceLast = 0;

/** Bytes of request body received by this process between two young-generation collections. */
export const BODY_BYTES_PER_YOUNG_GC = 4 * 1024 * 1024;

/**
 * Counts request-body bytes received (all uploads of the process together) and asks V8 for a
 * young-generation collection (a scavenge: ≈ 0.5 ms with 20 MB of dead buffers, measured alone) after
 * every {@link BODY_BYTES_PER_YOUNG_GC}.
 *
 * Why: Node's HTTP parser copies each piece of a request body (up to 64 KiB a socket read) into a
 * Buffer of its own (nodejs/node#52176). Written to the staging file they are dead, but freed only when
 * V8 collects their small JS wrappers, and those hardly fill the young generation: measured on the api,
 * `process.memoryUsage().arrayBuffers` grew 1 MB per MB received and fell back only at the next
 * scavenge, 12–24 MB later, so a 40 MB upload raised the peak RSS by 24–29 MB. A scavenge every 4 MiB
 * keeps that to a few MiB whatever the file's size. A smaller young generation would do it only at
 * `--max-semi-space-size=1` (12 MB; 8 and 2 MiB: 29 and 23 MB), which costs every request more
 * scavenges and promotions, and is lost when the api is started without the flag.
 */
export function countBodyBytes(bytes: number): void {
  sinceLast += bytes;
  if (sinceLast < BODY_BYTES_PER_YOUNG_GC) return;
  sinceLast = 0;
  if (gc === null) gc = collector();
  gc?.({ type: 'minor' });
}
