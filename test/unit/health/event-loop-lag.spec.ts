import { EventLoopLag } from '../../../src/health/event-loop-lag';

describe('EventLoopLag (the lag GET /api/health/live reports)', () => {
  let lag: EventLoopLag;
  afterEach(() => lag.onModuleDestroy());

  it('reports how late its sampling timer ran after the loop was blocked', async () => {
    lag = new EventLoopLag();
    lag.onModuleInit();
    expect(lag.lagMs).toBe(0);
    expect(JSON.parse(lag.liveBody)).toMatchObject({ status: 'ok', info: { eventLoop: { status: 'up', lagMs: 0 } } });
    // Block the loop past the 500 ms sample: the timer runs about 400 ms late.
    const until = performance.now() + 900;
    while (performance.now() < until) {
      /* busy */
    }
    // Wait for that sample (one loop turn at a time), not for a fixed time.
    while (lag.lagMs === 0) await new Promise((r) => setTimeout(r, 1));
    expect(lag.lagMs).toBeGreaterThanOrEqual(300);
    const eventLoop = { status: 'up', lagMs: lag.lagMs };
    expect(JSON.parse(lag.liveBody)).toEqual({ status: 'ok', info: { eventLoop }, error: {}, details: { eventLoop } });
  });
});
