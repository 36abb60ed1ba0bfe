import { Inject, Injectable, Logger, OnModuleInit, OnModuleDestroy } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { appConfig, queueConfig } from '../config/configuration';
import type { CircuitState, MlStatusReader, MlStatusSnapshot } from '../common/contracts';
import { withTimeout } from '../common/with-timeout';
import { RedisClient, RedisFactory } from '../redis/redis.factory';
import { MlService, MlStats } from './ml.service';

/** What a breaker-owning process publishes to `<QUEUE_NAME>:ml:status`. */
export interface MlPublishedStatus extends MlStatusSnapshot {
  stats: MlStats;
  /** ISO time of the publication. */
  updatedAt: string;
}

/** CONTRACT §4 `ml` details. */
export interface MlHealthDetails {
  circuit: CircuitState;
  stats: MlStats;
}

export const ML_STATUS_TTL_MS = 30_000;
export const ML_STATUS_REFRESH_MS = 10_000;
const READ_TIMEOUT_MS = 800;

const ZERO_STATS: MlStats = { successes: 0, failures: 0, timeouts: 0, rejects: 0, latencyMeanMs: 0 };

/**
 * ML availability shared across processes.
 *
 * Breaker owners (roles `worker` and `all`; also `api` when ENABLE_QUEUE=false, because then the API
 * segments synchronously and calls the ML service itself) answer from their local breaker and publish
 * `{ state, available, stats, updatedAt }` to `<QUEUE_NAME>:ml:status` with a 30 s TTL, every 10 s and on
 * every state change. Several workers share the one key: the latest report wins.
 *
 * `api` processes with the queue enabled never call the ML service: they read that key.
 */
@Injectable()
export class MlStatusService implements MlStatusReader, OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(MlStatusService.name);
  private readonly key: string;
  /** Whether this process owns a breaker that is used (see class doc). */
  readonly ownsBreaker: boolean;
  private client?: RedisClient;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private stopped = false;

  constructor(
    private readonly ml: MlService,
    private readonly redis: RedisFactory,
    @Inject(appConfig.KEY) app: ConfigType<typeof appConfig>,
    @Inject(queueConfig.KEY) queue: ConfigType<typeof queueConfig>,
  ) {
    this.key = `${queue.name}:ml:status`;
    this.ownsBreaker = app.role !== 'api' || !queue.enabled;
  }

  /** The Redis key status is published under. */
  get statusKey(): string {
    return this.key;
  }

  onModuleInit(): void {
    this.client = this.redis.create('ml-status', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    if (!this.ownsBreaker) return;
    this.client.on('ready', () => void this.publish());
    this.unsubscribe = this.ml.onStateChange(() => void this.publish());
    this.timer = setInterval(() => void this.publish(), ML_STATUS_REFRESH_MS);
    this.timer.unref();
  }

  /** Current ML availability (see class doc for where it comes from). */
  async current(): Promise<MlStatusSnapshot> {
    const s = await this.snapshot();
    return { state: s.state, available: s.available };
  }

  /** CONTRACT §4 ml details: `{ circuit, stats }`. */
  async details(): Promise<MlHealthDetails> {
    const s = await this.snapshot();
    return { circuit: s.state, stats: s.stats };
  }

  /** Full snapshot: local in breaker owners, else from Redis. Settles within ~1 s; never throws. */
  async snapshot(): Promise<MlPublishedStatus> {
    if (this.ownsBreaker) return this.local();
    try {
      const client = this.client;
      if (!client) return unknownStatus();
      const raw = await withTimeout(client.get(this.key), READ_TIMEOUT_MS, 'ml status read timed out');
      // No key: no worker has reported within the TTL, i.e. no worker reports the ML service reachable.
      // We then say `open`/unavailable: jobs wait in the queue until a worker reports otherwise.
      if (raw === null) return unknownStatus();
      return parsePublished(raw) ?? unknownStatus();
    } catch {
      return unknownStatus();
    }
  }

  /** Writes the local snapshot to Redis now (no-op unless this process owns the breaker). */
  async publish(): Promise<void> {
    if (!this.ownsBreaker || this.stopped || !this.client || this.client.status !== 'ready') return;
    try {
      await this.client.set(this.key, JSON.stringify(this.local()), 'PX', ML_STATUS_TTL_MS);
    } catch (err) {
      this.logger.debug(
        { err: err instanceof Error ? err.message : String(err) },
        'ml status publish failed',
      );
    }
  }

  onModuleDestroy(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    // The client is closed by RedisFactory on shutdown; the key expires on its own (other workers may
    // still be reporting to it, so it is not deleted).
  }

  private local(): MlPublishedStatus {
    const state = this.ml.state();
    return {
      state,
      available: state !== 'open',
      stats: this.ml.stats(),
      updatedAt: new Date().toISOString(),
    };
  }
}

function unknownStatus(): MlPublishedStatus {
  return { state: 'open', available: false, stats: { ...ZERO_STATS }, updatedAt: new Date(0).toISOString() };
}

const STATES: readonly CircuitState[] = ['closed', 'open', 'halfOpen'];

function parsePublished(raw: string): MlPublishedStatus | undefined {
  try {
    const v = JSON.parse(raw) as Partial<MlPublishedStatus> | null;
    if (!v || typeof v !== 'object' || !STATES.includes(v.state as CircuitState)) return undefined;
    const st = (v.stats ?? {}) as Partial<MlStats>;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
    return {
      state: v.state as CircuitState,
      available: typeof v.available === 'boolean' ? v.available : v.state !== 'open',
      stats: {
        successes: num(st.successes),
        failures: num(st.failures),
        timeouts: num(st.timeouts),
        rejects: num(st.rejects),
        latencyMeanMs: num(st.latencyMeanMs),
      },
      updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt : new Date(0).toISOString(),
    };
  } catch {
    return undefined;
  }
}
