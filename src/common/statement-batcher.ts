/** A gap longer than this many windows counts as this many (one quiet spell does not mask later load for long). */
const GAP_CAP_WINDOWS = 4;
/** Weight of the newest gap in the moving average: about the last 4–8 calls count. */
const GAP_WEIGHT = 0.25;

export interface StatementBatcherOptions {
  /** Batches at the database at once (default 1). */
  maxInFlight?: number;
  /** Calls per batch at most (default 100). */
  maxBatch?: number;
  /** How long a call that finds the batcher idle waits for company under load (default 0: never). */
  lingerMs?: number;
  /**
   * A lingering batch leaves as soon as it holds this many calls (default: only when `lingerMs` is up).
   * Set it to the most calls that can be waiting at once (a worker's writes: 2 × QUEUE_CONCURRENCY, see
   * TaskStore): once they are all in the batch, waiting longer finds no company and only holds every
   * caller back.
   */
  fullAt?: number;
}

/**
 * Coalesces calls of one hot statement into multi-row statements ("natural" group commit): while
 * `maxInFlight` batches are at the database, new calls wait and leave together in the next batch. A
 * call therefore waits at most about one round trip, and under load one statement (one transaction,
 * one commit, one WAL flush) serves many tasks. With no load every call is sent at once, alone.
 *
 * With `lingerMs` > 0, a call that finds the batcher idle (nothing queued, nothing in flight) waits
 * that long for company before it leaves, when company is likely: the recent calls came less than one
 * window apart on average (a moving average of the gaps between calls, each gap counted up to four
 * windows). Calls that arrive a few milliseconds apart (a worker's jobs answered one by one by a slow
 * ML service) then share a statement too, at the price of that wait; at low load (calls a window or
 * more apart on average, where a wait would rarely find company) and after a quiet spell a call
 * leaves at once. Calls queued behind a batch in flight leave as soon as it returns:
 * they have already waited. A lingering batch also leaves early once it holds `fullAt` calls.
 *
 * When a batch fails, each of its calls is run alone (`runOne`), so one bad item never fails
 * the others and every caller gets its own outcome.
 */
export class StatementBatcher<In, Out> {
  private queue: Array<{ input: In; resolve: (v: Out) => void; reject: (e: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;
  /** The pending linger's timer, while a batch waits for company. */
  private lingerTimer: NodeJS.Timeout | null = null;
  private lastCallAt = -Infinity;
  /** Moving average of the gaps between calls (ms), each gap capped at four windows; starts at the cap. */
  private gapAverage: number;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly lingerMs: number;
  private readonly fullAt: number;

  constructor(
    /** Runs a batch; returns one outcome per input, in order. */
    private readonly runBatch: (inputs: In[]) => Promise<Out[]>,
    private readonly runOne: (input: In) => Promise<Out>,
    { maxInFlight = 1, maxBatch = 100, lingerMs = 0, fullAt = Infinity }: StatementBatcherOptions = {},
  ) {
    this.maxInFlight = maxInFlight;
    this.maxBatch = maxBatch;
    this.lingerMs = lingerMs;
    this.fullAt = fullAt;
    this.gapAverage = GAP_CAP_WINDOWS * lingerMs;
  }

  run(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      const now = performance.now();
      const gap = Math.min(now - this.lastCallAt, GAP_CAP_WINDOWS * this.lingerMs);
      this.gapAverage += (gap - this.gapAverage) * GAP_WEIGHT;
      this.lastCallAt = now;
      const companyLikely = this.gapAverage < this.lingerMs;
      if (this.lingerTimer && this.queue.length >= this.fullAt) {
        // Full: stop waiting. The calls made in this turn of the event loop still join it.
        clearTimeout(this.lingerTimer);
        this.lingerTimer = null;
        this.scheduled = false;
      }
      this.schedule(this.lingerMs > 0 && this.inFlight === 0 && companyLikely && this.queue.length < this.fullAt);
    });
  }

  private schedule(linger = false): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.lingerTimer = null;
      this.flush();
    };
    // Calls made in the same turn of the event loop go together; with a linger, those of the next
    // `lingerMs` too.
    if (linger) this.lingerTimer = setTimeout(go, this.lingerMs);
    else setImmediate(go);
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  private async send(batch: StatementBatcher<In, Out>['queue']): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch;
      await this.runOne(only.input).then(only.resolve, only.reject);
      return;
    }
    let outs: Out[];
    try {
      outs = await this.runBatch(batch.map((b) => b.input));
    } catch {
      await Promise.all(batch.map((b) => this.runOne(b.input).then(b.resolve, b.reject)));
      return;
    }
    batch.forEach((b, i) => b.resolve(outs[i]));
  }
}
