import { EventEmitter } from 'node:events';
import type { Job, Queue } from 'bull';
import type { RedisClient } from '../../redis/redis.factory';

/**
 * The members of a Bull 4 queue the band consumer drives (`bull` is pinned; they are the ones Bull's
 * own `process()` loop uses). `processJob(job, true)` runs the handler with the lock renewed every
 * `lockRenewTime`, then moves the job to completed (without fetching the next one from the same queue)
 * or to failed/delayed, which applies `attempts` and the backoff.
 */
interface BullInternals<T> {
  keys: Record<'wait' | 'active', string>;
  setHandler(name: string, handler: (job: Job<T>) => Promise<unknown>): void;
  _initProcess(): Promise<void>;
  moveToActive(jobId: string): Promise<Job<T> | null>;
  processJob(job: Job<T>, notFetch: boolean): Promise<unknown>;
  moveUnlockedJobsToWait(): Promise<void>;
  startMoveUnlockedJobsToWait(): void;
}

/**
 * Atomically moves the next job of the most urgent non-empty band from its wait list to its active
 * list (what Bull's BRPOPLPUSH does for one queue). KEYS = wait₁, active₁, wait₂, active₂, … most
 * urgent first; all share one hash tag, so this is one slot on a Redis Cluster. Returns
 * {band index (0-based), job id} or nil.
 */
const POP_FIRST_LUA = `
for i = 1, #KEYS, 2 do
  local id = redis.call('RPOPLPUSH', KEYS[i], KEYS[i + 1])
  if id then return {(i - 1) / 2, id} end
end
return nil`;

const POP_FIRST = 'spherosegPopFirstBand';

type PopFirstClient = RedisClient & Record<typeof POP_FIRST, (n: number, ...keys: string[]) => Promise<[number, string] | null>>;

export interface BandConsumerOptions {
  /** Jobs processed at once by this process (QUEUE_CONCURRENCY). */
  concurrency: number;
  /** Bull job name the handler is registered for. */
  jobName: string;
  /**
   * Safety net when every band looked empty: one idle slot looks again this often. New jobs, retries
   * due and a resumed queue normally wake the slots at once through Bull's pub/sub events.
   */
  idlePollMs: number;
  /** Wait after a Redis error before a slot tries again. */
  retryDelayMs: number;
}

/**
 * Consumes several Bull queues ("bands") with one pool of `concurrency` slots, always taking the next
 * job from the most urgent band that has one — the priority order Bull gives one queue's prioritised
 * jobs, without Bull's O(n) prioritised insert. Each slot: wait while paused → pop (one Lua call across
 * all bands) → lock the job in its queue (`moveToActive`) → run it through the queue's own
 * `processJob` (lock renewal, completion, retries with backoff). Stalled jobs (a killed worker) are
 * moved back by Bull's own check, run on every band; delayed jobs (backoff) by each band's delay timer.
 *
 * Emits `error` (Error) for Redis failures of the loop; they never stop it.
 */
export class BandConsumer<T> extends EventEmitter {
  private running = false;
  private paused: { promise: Promise<void>; release: () => void } | null = null;
  private parked: Array<() => void> = [];
  /** Counts wake-ups, so a slot that found nothing can tell whether one came while it was looking. */
  private wakeups = 0;
  private slots: Promise<void>[] = [];
  private pollTimer?: NodeJS.Timeout;
  private readonly keys: string[];

  constructor(
    private readonly bands: ReadonlyArray<Queue<T>>,
    private readonly client: RedisClient,
    private readonly opts: BandConsumerOptions,
  ) {
    super();
    this.keys = bands.flatMap((q) => {
      const k = (q as unknown as BullInternals<T>).keys;
      return [k.wait, k.active];
    });
  }

  /** Registers the handler on every band, starts Bull's stalled checks and delay timers, then the slots. */
  async start(handler: (job: Job<T>) => Promise<unknown>): Promise<void> {
    if (!(POP_FIRST in this.client)) this.client.defineCommand(POP_FIRST, { lua: POP_FIRST_LUA });
    for (const q of this.bands) {
      const bull = q as unknown as BullInternals<T>;
      bull.setHandler(this.opts.jobName, handler);
      await bull._initProcess(); // delay timer: backoff retries return to `wait` when due
      await bull.moveUnlockedJobsToWait(); // jobs a dead worker left active
      bull.startMoveUnlockedJobsToWait();
      // Bull subscribes to a global event on first listener; wait until Redis confirmed both
      // subscriptions, so a job added right after start() wakes a slot.
      const subscribed = ['global:waiting', 'global:resumed'].map((ev) => new Promise((r) => q.once(`registered:${ev}`, r)));
      q.on('global:waiting', () => this.wakeAll());
      q.on('global:resumed', () => this.wakeAll());
      await Promise.all(subscribed);
      q.on('stalled', () => this.wakeAll()); // this process's stalled check moved a job back to `wait`
    }
    this.running = true;
    this.pollTimer = setInterval(() => this.parked.shift()?.(), this.opts.idlePollMs);
    this.pollTimer.unref();
    this.slots = Array.from({ length: this.opts.concurrency }, () => this.loop());
  }

  /** Stop taking jobs (jobs already taken go on). */
  pause(): void {
    if (this.paused) return;
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    this.paused = { promise, release };
  }

  resume(): void {
    const p = this.paused;
    this.paused = null;
    p?.release();
    this.wakeAll();
  }

  get isPaused(): boolean {
    return this.paused !== null;
  }

  /** Stop taking jobs for good and wait until every slot has finished its current job. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.pollTimer);
    this.paused?.release();
    this.wakeAll();
    await Promise.allSettled(this.slots);
  }

  private async loop(): Promise<void> {
    while (this.running) {
      if (this.paused) {
        await this.paused.promise;
        continue;
      }
      const seenWakeups = this.wakeups;
      let job: Job<T> | null;
      try {
        job = await this.next();
      } catch (err) {
        this.emit('error', err);
        await new Promise((r) => setTimeout(r, this.opts.retryDelayMs));
        continue;
      }
      if (!job) {
        // A wake-up that arrived while this slot was looking is not lost: look again instead of parking.
        if (this.wakeups === seenWakeups) await new Promise<void>((r) => this.parked.push(r));
        continue;
      }
      this.wakeAll(); // there was work: idle slots look too
      const bull = job.queue as unknown as BullInternals<T>;
      await bull.processJob(job, true).catch((err: unknown) => this.emit('error', err));
    }
  }

  /** The next job, locked by this process, from the most urgent band that has one; null when all are empty. */
  private async next(): Promise<Job<T> | null> {
    const client = this.client as PopFirstClient;
    const hit = await client[POP_FIRST](this.keys.length, ...this.keys);
    if (!hit) return null;
    const [band, jobId] = hit;
    return (this.bands[band] as unknown as BullInternals<T>).moveToActive(String(jobId));
  }

  private wakeAll(): void {
    this.wakeups += 1;
    const parked = this.parked;
    this.parked = [];
    for (const wake of parked) wake();
  }
}
