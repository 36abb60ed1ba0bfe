import { Histogram, Registry } from 'prom-client';
import { KeyedHistogram } from '../../../src/metrics/keyed-histogram';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

describe('KeyedHistogram (http_request_duration_seconds)', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const mine = new Registry();
    const theirs = new Registry();
    const keyed = new KeyedHistogram('http_request_duration_seconds', 'HTTP request duration', BUCKETS, mine);
    const reference = new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['method', 'route', 'status'], buckets: BUCKETS, registers: [theirs] });
    const routes = ['/api/health/live', '/api/images/:id', 'unmatched'];
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 5000; i++) {
      const method = rnd() < 0.5 ? 'GET' : 'POST';
      const route = routes[Math.floor(rnd() * routes.length)];
      const status = [200, 201, 404, 503][Math.floor(rnd() * 4)];
      // Values on the bounds themselves too (le is "less than or equal").
      const value = rnd() < 0.2 ? BUCKETS[Math.floor(rnd() * BUCKETS.length)] : rnd() * rnd() * 12;
      keyed.observe(`${method} ${status} ${route}`, () => ({ method, route, status: String(status) }), value);
      reference.observe({ method, route, status: String(status) }, value);
    }
    const sorted = async (r: Registry) => (await r.metrics()).split('\n').sort();
    expect(await sorted(mine)).toEqual(await sorted(theirs));
    expect((await mine.metrics()).length).toBeGreaterThan(1000);
  });

  it('reset() empties it', async () => {
    const r = new Registry();
    const h = new KeyedHistogram('x_seconds', 'x', [1], r);
    h.observe('a', () => ({ a: '1' }), 0.5);
    expect(await r.metrics()).toContain('x_seconds_count{a="1"} 1');
    r.resetMetrics();
    expect(await r.metrics()).not.toContain('x_seconds_count');
  });
});
