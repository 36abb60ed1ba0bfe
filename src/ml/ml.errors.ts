/**
 * Typed outcomes of an ML call (CONTRACT §8). Callers branch on the class, never on the message:
 *
 * - {@link MlBadInputError}: the service answered 4xx: the input is bad; fail the job at once, no retry.
 *   Does not count against the circuit.
 * - {@link MlServiceError}: 5xx, malformed body, refused connection or other network error; retry with
 *   backoff. Counts towards opening the circuit.
 * - {@link MlTimeoutError}: no answer within ML_SERVICE_TIMEOUT; the request was aborted. Counts as a failure.
 * - {@link MlCircuitOpenError}: the breaker refused the call; the ML service was NOT reached, so the
 *   attempt must not be used up (wait for {@link MlService.waitUntilCallable}).
 * - {@link MlAbortedError}: the caller's own signal aborted the call (e.g. the task was cancelled).
 *
 * Messages never contain the service URL, server paths or credentials.
 */
export abstract class MlError extends Error {
  /** Whether the request reached the ML service (for `attempts` accounting). */
  abstract readonly reachedService: boolean;
  /** Whether a retry may help. */
  abstract readonly retryable: boolean;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class MlBadInputError extends MlError {
  readonly reachedService = true;
  readonly retryable = false;
  constructor(
    message: string,
    /** The 4xx status the service answered with. */
    readonly status: number,
  ) {
    super(message);
  }
}

export class MlServiceError extends MlError {
  readonly reachedService = true;
  readonly retryable = true;
  constructor(
    message: string,
    /** The 5xx (or other unexpected) status when the service answered; undefined for network errors. */
    readonly status?: number,
  ) {
    super(message);
  }
}

export class MlTimeoutError extends MlError {
  readonly reachedService = true;
  readonly retryable = true;
  constructor(readonly timeoutMs: number) {
    super(`ML service did not answer within ${timeoutMs} ms`);
  }
}

export class MlCircuitOpenError extends MlError {
  readonly reachedService = false;
  readonly retryable = true;
  constructor(message = 'ML circuit is open: the ML service was not called') {
    super(message);
  }
}

export class MlAbortedError extends MlError {
  readonly reachedService = true;
  readonly retryable = false;
  constructor(message = 'ML call aborted by the caller') {
    super(message);
  }
}

const MAX_MESSAGE = 300;

/**
 * Makes an error message that came from the ML service safe to store and show: no URLs, no absolute
 * file paths (POSIX or Windows), no credentials, no control characters, bounded length.
 */
export function sanitizeMlMessage(raw: unknown, fallback = 'ML service rejected the input'): string {
  if (typeof raw !== 'string') return fallback;
  let s = raw
    // eslint-disable-next-line no-control-regex -- stripping control characters is the point
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, '<url>')
    .replace(/(password|passwd|pwd|secret|token)(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, '$1$2***')
    .replace(/\b[A-Za-z]:[\\/][^\s'"]*/g, '<path>')
    .replace(/(^|[\s'"(=:])(?:~|\.{1,2})?\/[^\s'"]*/g, '$1<path>')
    .replace(/\s+/g, ' ')
    .trim();
  if (!s) return fallback;
  if (s.length > MAX_MESSAGE) s = `${s.slice(0, MAX_MESSAGE - 1)}…`;
  return s;
}
