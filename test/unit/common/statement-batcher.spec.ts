import { StatementBatcher } from '../../../src/common/statement-batcher';

/** A statement the test answers by hand: records every call, resolves when told. */
function controllable(lingerMs = 0, fullAt?: number) {
  const batches: number[][] = [];
  const singles: number[] = [];
  const pending: Array<() => void> = [];
  const gate = () => new Promise<void>((r) => pending.push(r));
  let failBatch = false;
  const b = new StatementBatcher<number, string>(
    async (xs) => {
      batches.push(xs);
      await gate();
      if (failBatch) throw new Error('batch failed');
      return xs.map((x) => `b${x}`);
    },
    async (x) => {
      singles.push(x);
      await gate();
      if (x < 0) throw new Error(`bad ${x}`);
      return `s${x}`;
    },
    { lingerMs, fullAt },
  );
  const releaseAll = async () => {
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setImmediate(r));
      pending.splice(0).forEach((r) => r());
    }
  };
  return { b, batches, singles, releaseAll, failNextBatches: () => (failBatch = true) };
}

describe('StatementBatcher', () => {
  it('sends a lone call at once and alone, and the calls made meanwhile together in one batch', async () => {
    const c = controllable();
    const first = c.b.run(1);
    await new Promise((r) => setImmediate(r));
    expect(c.singles).toEqual([1]); // in flight
    const rest = [2, 3, 4, 5].map((x) => c.b.run(x));
    await new Promise((r) => setImmediate(r));
    expect(c.batches).toEqual([]); // waiting for the one in flight
    await c.releaseAll();
    expect(await first).toBe('s1');
    expect(await Promise.all(rest)).toEqual(['b2', 'b3', 'b4', 'b5']);
    expect(c.batches).toEqual([[2, 3, 4, 5]]);
  });

  it('calls of one turn of the event loop leave as one batch', async () => {
    const c = controllable();
    const all = [1, 2, 3].map((x) => c.b.run(x));
    await c.releaseAll();
    expect(await Promise.all(all)).toEqual(['b1', 'b2', 'b3']);
    expect(c.batches).toEqual([[1, 2, 3]]);
    expect(c.singles).toEqual([]);
  });

  it('retries a failed batch call by call: each caller gets its own outcome', async () => {
    const c = controllable();
    c.failNextBatches();
    const all = [1, -2, 3].map((x) => c.b.run(x).catch((e: Error) => e.message));
    await c.releaseAll();
    expect(await Promise.all(all)).toEqual(['s1', 'bad -2', 's3']);
    expect(c.batches).toEqual([[1, -2, 3]]);
    expect(c.singles).toEqual([1, -2, 3]);
  });

  describe('with a linger', () => {
    beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
    afterEach(() => jest.useRealTimers());

    /** Makes call `x` and checks it left at once, alone (no linger), then answers it. */
    async function sentAtOnce(c: ReturnType<typeof controllable>, x: number): Promise<void> {
      const call = c.b.run(x);
      await new Promise((r) => setImmediate(r)); // no timer advanced: only a linger would hold it
      expect(c.singles[c.singles.length - 1]).toBe(x);
      await c.releaseAll();
      expect(await call).toBe(`s${x}`);
    }

    it('sends the first call, and a call after a quiet spell that follows load, at once: no company is likely', async () => {
      const c = controllable(5);
      await sentAtOnce(c, 0); // a fresh batcher: the average gap starts at four windows
      for (let x = 1; x < 7; x++) {
        await jest.advanceTimersByTimeAsync(2);
        await sentAtOnce(c, x);
      }
      await jest.advanceTimersByTimeAsync(2);
      const loaded = c.b.run(7); // under load (average gap 4.4 ms): it waits for company
      await new Promise((r) => setImmediate(r));
      expect(c.singles).toEqual([0, 1, 2, 3, 4, 5, 6]);
      await jest.advanceTimersByTimeAsync(5);
      await c.releaseAll();
      expect(await loaded).toBe('s7');
      await jest.advanceTimersByTimeAsync(20); // a quiet spell: the average rises past one window
      await sentAtOnce(c, 8);
    });

    it('holds a call to an idle batcher for lingerMs once recent calls came less than a window apart on average, and the calls of that window leave with it', async () => {
      const c = controllable(5);
      // Gaps of 2 ms: the average of the gaps falls from 20 ms (four windows) by a quarter of the
      // difference per call: 15.5, 12.1, 9.6, 7.7, 6.3, 5.2, then 4.4 < 5 at the eighth call.
      for (let x = 0; x < 7; x++) {
        if (x > 0) await jest.advanceTimersByTimeAsync(2);
        await sentAtOnce(c, x);
      }
      await jest.advanceTimersByTimeAsync(2);
      const first = c.b.run(7);
      await jest.advanceTimersByTimeAsync(3);
      expect(c.batches).toEqual([]);
      expect(c.singles).toEqual([0, 1, 2, 3, 4, 5, 6]); // 7 is still waiting for company
      const second = c.b.run(8);
      await jest.advanceTimersByTimeAsync(2);
      expect(c.batches).toEqual([[7, 8]]);
      await c.releaseAll();
      expect(await Promise.all([first, second])).toEqual(['b7', 'b8']);
    });

    it('sends a lingering batch as soon as it holds fullAt calls, with the calls of that turn', async () => {
      const c = controllable(5, 3);
      for (let x = 0; x < 7; x++) {
        if (x > 0) await jest.advanceTimersByTimeAsync(2);
        await sentAtOnce(c, x); // the gaps of the test above: from the eighth call on, company is likely
      }
      await jest.advanceTimersByTimeAsync(2);
      const waiting = [c.b.run(7)];
      await jest.advanceTimersByTimeAsync(1);
      waiting.push(c.b.run(8));
      await jest.advanceTimersByTimeAsync(1);
      expect(c.batches).toEqual([]); // two of three: still waiting for company
      waiting.push(c.b.run(9), c.b.run(10)); // the third fills it; the fourth, made in the same turn, joins
      // No timer is advanced from here (3 of the 5 ms are left): only the full batch leaves now.
      await new Promise((r) => setImmediate(r));
      expect(c.batches).toEqual([[7, 8, 9, 10]]);
      await c.releaseAll();
      expect(await Promise.all(waiting)).toEqual(['b7', 'b8', 'b9', 'b10']);
      await jest.advanceTimersByTimeAsync(10); // the cancelled linger sends nothing more
      expect(c.batches).toEqual([[7, 8, 9, 10]]);
      expect(c.singles).toEqual([0, 1, 2, 3, 4, 5, 6]);
    });

    it('at low load, calls a window or more apart on average, sends every call at once, even one that follows another closely', async () => {
      // A worker at low load: a completion and the next claim 2 ms apart, then 12 ms to the next pair
      // (average 7 ms, above the 5 ms window). Each wait would mostly find no company.
      const c = controllable(5);
      for (let x = 0; x < 16; x++) {
        if (x > 0) await jest.advanceTimersByTimeAsync(x % 2 === 1 ? 2 : 12);
        await sentAtOnce(c, x);
      }
      expect(c.batches).toEqual([]);
    });

    it('sends the calls queued behind a batch in flight as soon as it returns, without a second wait', async () => {
      const c = controllable(5);
      const first = c.b.run(1);
      await new Promise((r) => setImmediate(r));
      expect(c.singles).toEqual([1]); // in flight
      const later = [2, 3].map((x) => c.b.run(x));
      // No timer is advanced from here: only a linger would keep them waiting.
      await c.releaseAll();
      expect(c.batches).toEqual([[2, 3]]); // checked before awaiting them: a linger fails here, not by timeout
      expect(await first).toBe('s1');
      expect(await Promise.all(later)).toEqual(['b2', 'b3']);
    });
  });
});
