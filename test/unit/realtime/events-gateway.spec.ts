import { randomBytes } from 'node:crypto';
import {
  client,
  closeClients,
  connected,
  FakeStatusReader,
  RealtimeTestApp,
  refused,
  setEnv,
  sleep,
  startRealtimeApp,
  TestClient,
  tokens,
  uniqueQueueName,
  waitFor,
} from './realtime-harness';

const JWT_SECRET = randomBytes(24).toString('hex');
const restoreEnv = setEnv({
  QUEUE_NAME: uniqueQueueName('gw'),
  JWT_SECRET,
  NODE_ENV: 'test',
  CORS_ORIGINS: '',
});
const sign = tokens(JWT_SECRET);

describe('EventsGateway (real Nest app on Fastify, real Redis)', () => {
  const reader = new FakeStatusReader({ state: 'closed', available: true });
  let rt: RealtimeTestApp;
  const clients: TestClient[] = [];
  const open = (auth: Record<string, unknown> = {}, extra = {}) => {
    const c = client(rt.url, auth, extra);
    clients.push(c);
    return c;
  };
  /** Connects user `sub` and waits for the initial ml:status (the socket is then fully set up). */
  const openUser = async (sub: number, extra = {}) => {
    const c = open({ token: sign(sub) }, extra);
    await connected(c);
    await waitFor(() => c.named('ml:status').length === 1, 'initial ml:status');
    return c;
  };

  beforeAll(async () => {
    rt = await startRealtimeApp('api', { reader });
  });
  afterEach(() => closeClients(clients));
  afterAll(async () => {
    await rt?.close();
    restoreEnv();
  });

  describe('handshake authentication', () => {
    const refusedCases: Array<[string, () => Record<string, unknown>]> = [
      ['no token', () => ({})],
      ['an empty token', () => ({ token: '' })],
      ['a token that is not a string', () => ({ token: 12345 })],
      ['garbage', () => ({ token: 'not-a-jwt' })],
      ['a bad signature', () => ({ token: sign(1, {}, 'another-secret-of-enough-length') })],
      ['an expired token', () => ({ token: sign(1, { exp: Math.floor(Date.now() / 1000) - 30 }) })],
      ['a token without a numeric sub', () => ({ token: sign('abc' as unknown as number) })],
      [
        'an unsigned (alg none) token',
        () => {
          const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
          return {
            token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 1, email: 'x@y.z', role: 'admin' })}.`,
          };
        },
      ],
    ];

    it.each(refusedCases)(
      'refuses %s with connect_error "unauthorized" and never runs the connection handler',
      async (_, auth) => {
        const readsBefore = reader.calls;
        const c = open(auth());
        await expect(refused(c)).resolves.toBe('unauthorized');
        expect(c.socket.connected).toBe(false);
        expect(c.events).toEqual([]);
        expect(reader.calls).toBe(readsBefore); // the connection handler (which reads the status) did not run
      },
    );

    it('refuses over the WebSocket transport too', async () => {
      const c = open({ token: 'nope' }, { transports: ['websocket'] });
      await expect(refused(c)).resolves.toBe('unauthorized');
    });

    it('accepts a valid token in auth.token, and a Bearer Authorization header', async () => {
      const a = open({ token: sign(11) });
      await expect(connected(a)).resolves.toBeUndefined();
      const b = open({}, { extraHeaders: { authorization: `Bearer ${sign(12)}` } });
      await expect(connected(b)).resolves.toBeUndefined();
    });
  });

  describe('ml:status', () => {
    it('arrives once right after connecting, and again to everybody on broadcastMlStatus', async () => {
      reader.snapshot = { state: 'halfOpen', available: true };
      const a = await openUser(21);
      const b = await openUser(22, { transports: ['websocket'] });
      expect(a.named('ml:status')).toEqual([{ state: 'halfOpen', available: true }]);
      expect(b.named('ml:status')).toEqual([{ state: 'halfOpen', available: true }]);

      rt.publisher.broadcastMlStatus({ state: 'open', available: false });
      await waitFor(
        () => a.named('ml:status').length === 2 && b.named('ml:status').length === 2,
        'broadcast ml:status',
      );
      expect(a.named('ml:status')[1]).toEqual({ state: 'open', available: false });
      expect(b.named('ml:status')[1]).toEqual({ state: 'open', available: false });
      // Exactly one initial status each: nothing else arrived meanwhile.
      expect(a.events.map((e) => e.event)).toEqual(['ml:status', 'ml:status']);
    });
  });

  describe('per-user events', () => {
    it("delivers only the user's own events, to each of their sockets, in publication order", async () => {
      const a1 = await openUser(31);
      const a2 = await openUser(31, { transports: ['websocket'] });
      const b = await openUser(32);

      const taskId = 't-31';
      rt.publisher.toUser(31, 'segmentation:queued', { taskId, imageId: 5, priority: 1 });
      for (let p = 10; p <= 90; p += 10)
        rt.publisher.toUser(31, 'segmentation:progress', { taskId, imageId: 5, progress: p });
      rt.publisher.toUser(31, 'segmentation:completed', {
        taskId,
        imageId: 5,
        polygonCount: 3,
        spheroidCount: 2,
        processingTimeMs: 42,
      });
      // Published after all of A's on the same connection: once B has it, A's events were all delivered.
      rt.publisher.toUser(32, 'segmentation:cancelled', { taskId: 't-32', imageId: 6 });

      await waitFor(() => b.named('segmentation:cancelled').length === 1, "B's own event");
      await waitFor(
        () =>
          a1.named('segmentation:completed').length === 1 && a2.named('segmentation:completed').length === 1,
        "A's last event",
      );

      const expected = [
        ['segmentation:queued', { taskId, imageId: 5, priority: 1 }],
        ...[10, 20, 30, 40, 50, 60, 70, 80, 90].map((progress) => [
          'segmentation:progress',
          { taskId, imageId: 5, progress },
        ]),
        ['segmentation:completed', { taskId, imageId: 5, polygonCount: 3, spheroidCount: 2, processingTimeMs: 42 }],
      ];
      const userEvents = (c: TestClient) =>
        c.events.filter((e) => e.event !== 'ml:status').map((e) => [e.event, e.payload]);
      expect(userEvents(a1)).toEqual(expected);
      expect(userEvents(a2)).toEqual(expected);
      expect(userEvents(b)).toEqual([['segmentation:cancelled', { taskId: 't-32', imageId: 6 }]]);
    });
  });

  describe('token expiry', () => {
    it('disconnects a socket when its token expires while connected', async () => {
      // exp has second granularity: this token is valid for 2-3 more seconds (at least 2 s to connect
      // on a loaded runner; a token that expired before the handshake would fail the test elsewhere).
      const c = open({ token: sign(41, { exp: Math.floor(Date.now() / 1000) + 3 }) });
      await connected(c);
      await waitFor(() => c.named('ml:status').length === 1, 'initial ml:status');
      const other = await openUser(42);
      await waitFor(() => c.disconnectReason !== undefined, 'disconnect at token expiry');
      expect(c.disconnectReason).toBe('io server disconnect');
      expect(other.socket.connected).toBe(true);
    });
  });

  describe('flooding', () => {
    it('disconnects a client that floods the server while others keep receiving', async () => {
      const flooder = await openUser(51, { transports: ['websocket'] });
      const calm = await openUser(52);
      // A client within the limit is fine.
      for (let i = 0; i < 5; i++) calm.socket.emit('hello', i);
      for (let i = 0; i < 200; i++) flooder.socket.emit('spam', i);
      await waitFor(() => flooder.disconnectReason !== undefined, 'flooder disconnected');
      expect(flooder.disconnectReason).toBe('io server disconnect');

      rt.publisher.toUser(52, 'segmentation:queued', { taskId: 't-52', imageId: 7, priority: 2 });
      await waitFor(() => calm.named('segmentation:queued').length === 1, 'event to the calm client');
      expect(calm.socket.connected).toBe(true);
      await sleep(50);
      expect(calm.socket.connected).toBe(true);
    });

    it('refuses oversized packets without affecting others', async () => {
      const big = await openUser(53, { transports: ['websocket'] });
      const calm = await openUser(54);
      big.socket.emit('blob', 'x'.repeat(64 * 1024));
      await waitFor(() => big.disconnectReason !== undefined, 'oversized client disconnected');
      rt.publisher.toUser(54, 'segmentation:cancelled', { taskId: 't-54', imageId: 8 });
      await waitFor(() => calm.named('segmentation:cancelled').length === 1, 'event to the calm client');
    });
  });
});
