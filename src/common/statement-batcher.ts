/**
 * Coalesces calls of one hot statement into multi-row statements ("natural" group commit): while
 * `maxInFlight` batches are at the database, new calls wait and leave together in the next batch. A
 * call therefore waits at most about one round trip, and under load one statement (one transaction,
 * one commit, one WAL flush) serves many tasks. With no load every call is sent at once, alone.
 *
 * When a batch fails, each of its calls is run alone (`runOne`), so one bad item never fails
 * the others and every caller gets its own outcome.
 */
export class StatementBatcher<In, Out> {
  private queue: Array<{ input: In; resolve: (v: Out) => void; reject: (e: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    /** Runs a batch; returns one outcome per input, in order. */
    private readonly runBatch: (inputs: In[]) => Promise<Out[]>,
    private readonly runOne: (input: In) => Promise<Out>,
    private readonly maxInFlight = 1,
    private readonly maxBatch = 100,
  ) {}

  run(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    // Calls made in the same turn of the event loop go together.
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
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
