import { EventEmitter } from 'node:events';
import type { Job, Queue } from 'bull';
import type { RedisClient } from '../../redis/redis.factory';
import { Fairness, PopPlan, fairGiveBack, fairPop, fairPopArgs } from '../fair-lines';

/**
 * The members of a Bull 4 queue the band consumer drives (`bull` is pinned; they are the ones Bull's
 * own `process()` loop uses). `processJob(job, true)` runs the handler with the lock renewed every
 * `lockRenewTime`, then moves the job to completed (without fetching the next one from the same queue)
 * or to failed/delayed, which applies `attempts` and the backoff.
 */
interface BullInternals<T> {
  keys: Record<'wait' | 'active' | 'paused' | 'meta-paused', string>;
  token: string;
  settings: { lockDuration: number; lockRenewTime: number };
  setHandler(name: string, handler: (job: Job<T>) => Promise<unknown>): void;
  _initProcess(): Promise<void>;
  /** What `moveToActive` does with the job hash its script returned: the Job (or null without one). */
  nextJobFromJobData(jobData: Record<string, string> | undefined, jobId: string): Job<T> | null | Promise<Job<T> | null>;
  processJob(job: Job<T>, notFetch: boolean): Promise<unknown>;
  moveUnlockedJobsToWait(): Promise<void>;
  startMoveUnlockedJobsToWait(): void;
}

/**
 * Gives back a job this process took from Bull's wait list but has not started: drops its lock (if still ours), removes it
 * from `active` and puts it at the head of the line again (the consuming end of `wait`, or of `paused`
 * while the queue is paused — Bull renames one onto the other). KEYS = active, wait, paused,
 * meta-paused, lock; ARGV = job id, lock token.
 */
const UNFETCH_LUA = `
if redis.call('GET', KEYS[5]) == ARGV[2] then redis.call('DEL', KEYS[5]) end
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed > 0 then
  local target = KEYS[2]
  if redis.call('EXISTS', KEYS[4]) == 1 then target = KEYS[3] end
  redis.call('RPUSH', target, ARGV[1])
end
return removed`;

const UNFETCH = 'spherosegUnfetchJob';

type ConsumerClient = RedisClient & Record<typeof UNFETCH, (n: number, ...keysAndArgs: string[]) => Promise<number>>;

/**
 * Processes one job; resolves/rejects as Bull expects (rejection = failed attempt, retried per the
 * job's options). `releaseSlot()` (optional, idempotent) says the job no longer needs its slot — for
 * the worker, once the ML call has returned — so the slot takes its next job while this one records
 * its outcome. The job still completes in Bull only when the handler settles; a slot holds at most
 * one such finishing job besides the one it runs, so at most `concurrency` jobs are before that point.
 */
export type JobHandler<T> = (job: Job<T>, releaseSlot: () => void) => Promise<unknown>;

export interface BandConsumerOptions {
  /** Jobs processed at once by this process (QUEUE_CONCURRENCY); see {@link JobHandler} for early release. */
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
  /** Called for a job fetched ahead (it will run on its slot next), e.g. to start its first step early. */
  onFetchedAhead?(job: Job<unknown>): void;
  /**
   * QUEUE_FAIRNESS: `user` (default) — inside a band the users take turns (`fair-lines.ts`); `none` — Bull's
   * FIFO wait list of the band first. Either way jobs left in the other structure are taken too.
   */
  fairness?: Fairness;
}

/**
 * Consumes several Bull queues ("bands") with one pool of `concurrency` slots, always taking the next
 * job from the most urgent band that has one — the priority order Bull gives one queue's prioritised
 * jobs, without Bull's O(n) prioritised insert; inside a band, with fairness `user`, the users take turns
 * (`fair-lines.ts`). Each slot: wait while paused → pop (one Lua call across all bands and their user
 * lists, skipping a band an admin paused, that also locks the job as Bull's `moveToActive` would) → run it through
 * the queue's own `processJob` (lock renewal, completion, retries with backoff). Stalled jobs (a killed worker) are
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
  /** Every job taken and not finished yet (including those whose slot was released early). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly releasers = new WeakMap<Job<T>, () => void>();
  private readonly lockKeepers = new Map<Job<T>, NodeJS.Timeout>();
  private pollTimer?: NodeJS.Timeout;
  private readonly popPlan: PopPlan;
  /** Jobs taken from a user list (they go back there, not to Bull's wait list, when given back). */
  private readonly fromLines = new WeakSet<Job<T>>();

  constructor(
    private readonly bands: ReadonlyArray<Queue<T>>,
    private readonly client: RedisClient,
    private readonly opts: BandConsumerOptions,
  ) {
    super();
    this.popPlan = fairPopArgs(bands as ReadonlyArray<Queue>, opts.fairness ?? 'user');
  }

  /**
   * Registers the handler on every band, starts Bull's stalled checks and delay timers, then the slots.
   * The handler gets `releaseSlot`: calling it lets its slot take the next job while this one finishes
   * (e.g. records its outcome) — see {@link JobHandler}.
   */
  async start(handler: JobHandler<T>): Promise<void> {
    if (!(UNFETCH in this.client)) this.client.defineCommand(UNFETCH, { lua: UNFETCH_LUA });
    const bullHandler = (job: Job<T>) => handler(job, this.releasers.get(job) ?? (() => undefined));
    for (const q of this.bands) {
      const bull = q as unknown as BullInternals<T>;
      bull.setHandler(this.opts.jobName, bullHandler);
      await bull._initProcess(); // delay timer: backoff retries return to `wait` when due
      await bull.moveUnlockedJobsToWait(); // jobs a dead worker left active
      bull.startMoveUnlockedJobsToWait();
      // Bull subscribes to a global event on first listener; wait until Redis confirmed both
      // subscriptions, so a job added right after start() wakes a slot.
      const subscribed = ['global:waiting', 'global:resumed'].map((ev) => new Promise((r) => q.once(`registered:${ev}`, r)));
      // One new job: one idle slot looks (it wakes the next if it found work), not all of them: with every
      // slot of every worker woken per job, all but one popped nothing, for each job queued.
      q.on('global:waiting', () => this.wakeOne());
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

  /** Stop taking jobs for good and wait until every job taken has finished. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.pollTimer);
    this.paused?.release();
    this.wakeAll();
    await Promise.allSettled(this.slots);
    await Promise.allSettled([...this.inFlight]);
  }

  private async loop(): Promise<void> {
    /** This slot's previous job, released early and still finishing: at most one per slot. */
    let finishing: Promise<unknown> | null = null;
    /** The next job, fetched while the current one runs, with the wake-up count seen when it started. */
    let ahead: { job: Promise<Job<T> | null>; seenWakeups: number } | null = null;
    while (this.running) {
      if (this.paused) {
        if (ahead) await this.giveBack(await ahead.job);
        ahead = null;
        await this.paused.promise;
        continue;
      }
      const fetch = ahead ?? { job: this.next(), seenWakeups: this.wakeups };
      ahead = null;
      let job: Job<T> | null;
      try {
        job = await fetch.job;
      } catch (err) {
        this.emit('error', err);
        await new Promise((r) => setTimeout(r, this.opts.retryDelayMs));
        continue;
      }
      if (!job) {
        // A wake-up that arrived while this slot was looking is not lost: look again instead of parking.
        if (this.wakeups === fetch.seenWakeups) await new Promise<void>((r) => this.parked.push(r));
        continue;
      }
      if (this.paused || !this.running) {
        await this.giveBack(job); // paused (or stopped) while it was being fetched
        continue;
      }
      this.stopKeepingLocked(job); // processJob renews its lock from now on
      this.wakeOne(); // there was work: another idle slot looks too (and so on while there is)
      const bull = job.queue as unknown as BullInternals<T>;
      let releaseSlot!: () => void;
      const released = new Promise<void>((r) => (releaseSlot = r));
      this.releasers.set(job, releaseSlot);
      const done = bull
        .processJob(job, true)
        .catch((err: unknown) => this.emit('error', err))
        .finally(() => {
          this.releasers.delete(job);
          this.inFlight.delete(done);
          releaseSlot();
        });
      this.inFlight.add(done);
      // Under load (no slot of this process idle), fetch this slot's next job while this one runs, so
      // the Redis round trips of taking a job are not between two jobs. It is the most urgent job at
      // this moment; it starts when this slot is free, or goes back to the head of its band if the
      // consumer pauses first. With an idle slot around, a job fetched ahead would wait for this
      // slot instead of running at once there (or on another worker), so nothing is fetched ahead.
      if (this.parked.length === 0) {
        const next = this.next();
        ahead = { job: next, seenWakeups: this.wakeups };
        next.then(
          (j) => {
            if (!j) return;
            this.keepLocked(j);
            if (this.running && !this.paused) this.opts.onFetchedAhead?.(j as Job<unknown>);
          },
          () => undefined, // a failure is handled when it is awaited
        );
      }
      await released;
      // Released early: the slot moves on, but first the job before this one must be finished, so a
      // slot never has more than one job finishing besides the one it runs.
      if (finishing) await finishing;
      finishing = done;
    }
    if (ahead) await this.giveBack(await ahead.job.catch(() => null));
  }

  /**
   * A job fetched ahead may wait for its slot longer than its lock lasts (a slow ML call): renew the
   * lock as Bull's processJob would, until the job starts or is given back. Otherwise the stalled check
   * would hand it to another worker while this one still means to run it.
   */
  private keepLocked(job: Job<T>): void {
    const { lockDuration, lockRenewTime } = (job.queue as unknown as BullInternals<T>).settings;
    const timer = setInterval(() => void job.extendLock(lockDuration).catch((err: unknown) => this.emit('error', err)), lockRenewTime);
    timer.unref();
    this.lockKeepers.set(job, timer);
  }

  private stopKeepingLocked(job: Job<T>): void {
    clearInterval(this.lockKeepers.get(job));
    this.lockKeepers.delete(job);
  }

  /**
   * Returns a fetched job that was not started to the head of the line it came from: its user's list, its
   * user back at the front of the band's turns (`fair-lines.ts`), or Bull's wait list (see UNFETCH_LUA).
   */
  private async giveBack(job: Job<T> | null): Promise<void> {
    if (!job) return;
    this.stopKeepingLocked(job);
    const q = job.queue as unknown as BullInternals<T>;
    const lockKey = (job as unknown as { lockKey(): string }).lockKey();
    try {
      if (this.fromLines.has(job)) await fairGiveBack(this.client, job.queue as Queue, String(job.id), lockKey);
      else await (this.client as ConsumerClient)[UNFETCH](5, q.keys.active, q.keys.wait, q.keys.paused, q.keys['meta-paused'], lockKey, String(job.id), q.token);
    } catch (err) {
      // Left locked in `active`: Bull's stalled check returns it to `wait` once the lock expires.
      this.emit('error', err);
    }
    this.wakeOne(); // one job is back
  }

  /**
   * The next job, locked by this process, from the most urgent band that has one (in that band, the user
   * whose turn it is; see `fair-lines.ts`); null when all are empty.
   */
  private async next(): Promise<Job<T> | null> {
    const hit = await fairPop(this.client, this.popPlan); // taken and locked in one call
    if (!hit) return null;
    const bull = this.bands[hit.band] as unknown as BullInternals<T>;
    const job = await bull.nextJobFromJobData(Object.keys(hit.fields).length ? hit.fields : undefined, hit.jobId);
    if (job && hit.fromLines) this.fromLines.add(job);
    return job;
  }

  /** Wakes one idle slot; a slot that is looking right now looks again rather than parking (see loop). */
  private wakeOne(): void {
    this.wakeups += 1;
    this.parked.shift()?.();
  }

  private wakeAll(): void {
    this.wakeups += 1;
    const parked = this.parked;
    this.parked = [];
    for (const wake of parked) wake();
  }
}
