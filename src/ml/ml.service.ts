import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import CircuitBreaker from 'opossum';
import { EventEmitter } from 'node:events';
import { mlConfig } from '../config/configuration';
import type { CircuitState, MlSegmentRequest, MlSegmentResults } from '../common/contracts';
import { MetricsService } from '../metrics/metrics.service';
import { MlHttpClient } from './ml-http.client';
import {
  MlAbortedError,
  MlBadInputError,
  MlCircuitOpenError,
  MlError,
  MlServiceError,
  MlTimeoutError,
} from './ml.errors';

/** Breaker counters over opossum's rolling window (CONTRACT §4 ml details `stats`). */
export interface MlStats {
  successes: number;
  failures: number;
  timeouts: number;
  rejects: number;
  latencyMeanMs: number;
}

export interface MlSegmentOptions {
  /**
   * Aborts the call (e.g. the task was cancelled): the request and its socket are closed and the call
   * rejects with {@link MlAbortedError}. An aborted call does not count as an ML failure.
   */
  signal?: AbortSignal;
}

/** How long a half-open circuit waits for a real trial call before probing `/health` itself. */
const IDLE_PROBE_GRACE_MS = 500;
const STATE_GAUGE: Record<CircuitState, number> = { closed: 0, halfOpen: 1, open: 2 };

type Action = (req: MlSegmentRequest, controller: AbortController) => Promise<MlSegmentResults>;

/**
 * ML calls behind one opossum circuit breaker per process (CONTRACT §2, §8):
 * - `timeout` = ML_SERVICE_TIMEOUT; on timeout the call's own AbortController is aborted, so the
 *   request's socket is closed. (opossum 9's `abortController` option is one controller for the whole
 *   breaker: one timeout would abort every concurrent call, so we keep one controller per call.)
 * - 4xx ({@link MlBadInputError}) does not count as a failure (errorFilter); 5xx, network errors,
 *   malformed bodies and timeouts do.
 * - While open, calls reject with {@link MlCircuitOpenError} without reaching the service.
 *
 * Constructing it opens no connection.
 */
@Injectable()
export class MlService implements OnApplicationShutdown {
  private readonly logger = new Logger(MlService.name);
  private readonly breaker: CircuitBreaker<Parameters<Action>, MlSegmentResults>;
  private readonly events = new EventEmitter();
  private readonly waiters = new Set<(err?: Error) => void>();
  private destroyed = false;
  private probeTimer?: NodeJS.Timeout;

  constructor(
    private readonly client: MlHttpClient,
    @Inject(mlConfig.KEY) private readonly cfg: ConfigType<typeof mlConfig>,
    private readonly metrics: MetricsService,
  ) {
    this.events.setMaxListeners(0);
    const action: Action = (req, controller) => this.client.segment(req, controller.signal);
    this.breaker = new CircuitBreaker<Parameters<Action>, MlSegmentResults>(action, {
      name: 'ml-segment',
      timeout: cfg.timeoutMs,
      errorThresholdPercentage: cfg.errorThresholdPercentage,
      volumeThreshold: cfg.volumeThreshold,
      resetTimeout: cfg.resetTimeoutMs,
      // Bad input proves the service is up; a caller's abort says nothing about it.
      errorFilter: (err: unknown) => err instanceof MlBadInputError || err instanceof MlAbortedError,
    });
    // opossum emits 'timeout' with (error, latency, args) though @types/opossum declares only the error.
    (this.breaker as unknown as EventEmitter).on(
      'timeout',
      (_err: unknown, _latency: unknown, args: unknown) => {
        const controller = Array.isArray(args) ? (args[1] as AbortController | undefined) : undefined;
        controller?.abort(new MlTimeoutError(this.cfg.timeoutMs));
      },
    );
    this.breaker.on('open', () => this.changed('open'));
    this.breaker.on('halfOpen', () => {
      this.changed('halfOpen');
      this.scheduleIdleProbe();
    });
    this.breaker.on('close', () => this.changed('closed'));
    this.metrics.mlCircuitState.set(STATE_GAUGE.closed);
  }

  /**
   * Segments one image. Resolves with the validated §8 results; rejects with an {@link MlError}:
   * MlBadInputError | MlServiceError | MlTimeoutError | MlCircuitOpenError | MlAbortedError.
   */
  async segment(req: MlSegmentRequest, options: MlSegmentOptions = {}): Promise<MlSegmentResults> {
    const { signal } = options;
    if (signal?.aborted) throw new MlAbortedError();
    const controller = new AbortController();
    const onAbort = () => controller.abort(new MlAbortedError());
    signal?.addEventListener('abort', onAbort, { once: true });
    const started = performance.now();
    const observe = (result: 'success' | 'bad_input' | 'failure' | 'timeout') => {
      this.metrics.mlRequestsTotal.inc({ result });
      this.metrics.mlRequestDuration.observe((performance.now() - started) / 1000);
    };
    try {
      const results = await this.breaker.fire(req, controller);
      observe('success');
      return results;
    } catch (err) {
      const mapped = this.mapError(err);
      if (mapped instanceof MlCircuitOpenError) this.metrics.mlRequestsTotal.inc({ result: 'rejected' });
      else if (mapped instanceof MlBadInputError) observe('bad_input');
      else if (mapped instanceof MlTimeoutError) observe('timeout');
      else if (!(mapped instanceof MlAbortedError)) observe('failure');
      throw mapped;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Current circuit state in contract spelling. A shut-down breaker reports `open`. */
  state(): CircuitState {
    if (this.breaker.closed) return 'closed';
    if (this.breaker.halfOpen) return 'halfOpen';
    return 'open';
  }

  /** True when a call may go through: closed, or half-open while the trial slot is still free. */
  isCallable(): boolean {
    if (this.destroyed) return false;
    return this.breaker.closed || (this.breaker.halfOpen && this.breaker.pendingClose);
  }

  /**
   * Resolves at once when the circuit is closed or half-open, else on the next half-open/close.
   * Rejects with the signal's reason when `signal` aborts, and with {@link MlCircuitOpenError} when the
   * module is destroyed while waiting.
   */
  waitUntilCallable(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.destroyed) return Promise.reject(new MlCircuitOpenError('ML circuit breaker is shut down'));
    if (this.isCallable()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.waiters.delete(done);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => done(abortReason(signal!));
      const unsubscribe = this.onStateChange((s) => {
        if (s !== 'open') done();
      });
      this.waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * After a call was refused ({@link MlCircuitOpenError}) while the circuit looked callable — the
   * half-open trial of another caller is in flight — wait for the next state change (or `maxWaitMs`)
   * instead of retrying at once, which would spin the event loop.
   */
  waitForStateChange(signal?: AbortSignal, maxWaitMs = 1000): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(done);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(), maxWaitMs);
      timer.unref();
      const onAbort = () => done(abortReason(signal!));
      const unsubscribe = this.onStateChange(() => done());
      this.waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** opossum's rolling-window counters. */
  stats(): MlStats {
    const s = this.breaker.stats;
    return {
      successes: s.successes,
      failures: s.failures,
      timeouts: s.timeouts,
      rejects: s.rejects,
      latencyMeanMs:
        Number.isFinite(s.latencyMean) && s.latencyMean >= 0 ? Math.round(s.latencyMean * 100) / 100 : 0,
    };
  }

  /** Calls `listener` on every state change; returns the unsubscribe function. */
  onStateChange(listener: (state: CircuitState) => void): () => void {
    const safe = (s: CircuitState) => {
      try {
        listener(s);
      } catch (err) {
        this.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'ml state listener failed',
        );
      }
    };
    this.events.on('state', safe);
    return () => this.events.off('state', safe);
  }

  /**
   * Shuts the breaker down in the last shutdown phase (not onModuleDestroy), so that consumers that
   * drain their active jobs in onModuleDestroy/beforeApplicationShutdown can still call the service.
   * In-flight calls are not aborted here (pass `signal` to `segment` for that); waiters are rejected.
   */
  onApplicationShutdown(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.probeTimer);
    this.breaker.shutdown();
    for (const w of [...this.waiters]) w(new MlCircuitOpenError('ML circuit breaker is shut down'));
    this.events.removeAllListeners();
  }

  /**
   * A half-open circuit is decided by its next call. A worker with no job to try (its queue share went
   * to other workers meanwhile) would stay half-open — and report it in `ml:status` — indefinitely, so
   * when no trial call has started shortly after, it asks the service's `/health` itself: answered →
   * close, else open again (and half-open after ML_BREAKER_RESET_TIMEOUT, and so on).
   */
  private scheduleIdleProbe(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => void this.idleProbe(), IDLE_PROBE_GRACE_MS);
    this.probeTimer.unref();
  }

  private async idleProbe(): Promise<void> {
    const trialSlotFree = () => !this.destroyed && this.breaker.halfOpen && this.breaker.pendingClose;
    if (!trialSlotFree()) return; // a real call is the trial
    let healthy: boolean;
    try {
      await this.client.health(this.cfg.timeoutMs);
      healthy = true;
    } catch {
      healthy = false;
    }
    if (!trialSlotFree()) return;
    this.logger.log({ healthy }, 'idle half-open circuit probed the ML service');
    if (healthy) this.breaker.close();
    else this.breaker.open();
  }

  private changed(state: CircuitState): void {
    this.metrics.mlCircuitState.set(STATE_GAUGE[state]);
    this.logger.log({ circuit: state }, 'ml circuit state changed');
    this.events.emit('state', state);
  }

  private mapError(err: unknown): MlError {
    if (err instanceof MlError) return err;
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'EOPENBREAKER') return new MlCircuitOpenError();
    if (code === 'ESHUTDOWN') return new MlCircuitOpenError('ML circuit breaker is shut down');
    if (code === 'ETIMEDOUT') return new MlTimeoutError(this.cfg.timeoutMs);
    if (code === 'ESEMLOCKED') return new MlCircuitOpenError('ML call refused: too many concurrent calls');
    return new MlServiceError('ML call failed unexpectedly');
  }
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new MlAbortedError('wait aborted');
}
