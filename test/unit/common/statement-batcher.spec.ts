import { StatementBatcher } from '../../../src/common/statement-batcher';

/** A statement the test answers by hand: records every call, resolves when told. */
function controllable() {
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
});
