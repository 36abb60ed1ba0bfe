import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { MlSegmentResponse, MlSegmentResults } from '../../src/common/contracts';

/**
 * How the stub answers one `POST /segment` (or `GET /health`, see {@link MlStub.behaveHealth}).
 * Fields combine: e.g. `{ latencyMs: 200, status: 500 }` answers 500 after 200 ms.
 */
export interface MlStubBehaviour {
  /** HTTP status. Default 200. */
  status?: number;
  /** Wait this long before answering. Default 0. */
  latencyMs?: number;
  /** Never answer; the request stays open until the client aborts it or the stub stops. */
  hang?: boolean;
  /**
   * JSON body to send. Default: for 2xx the valid §8 body ({@link MlStub.validBody}); for 4xx/5xx
   * `{ success: false, error: "stub error <status>" }`.
   */
  body?: unknown;
  /** Raw body text sent as is (wins over `body`), e.g. `'not json'` for malformed responses. */
  raw?: string;
  /** Destroy the socket without answering (a connection reset). */
  destroy?: boolean;
}

/** One request the stub received. */
export interface MlStubCall {
  method: string;
  path: string;
  /** Parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  /** `Date.now()` when the request body was fully received. */
  receivedAt: number;
  /** The request's Authorization header, if any. */
  authorization?: string;
}

export interface MlStubOptions {
  /** `image_width` of the default body. Default 640. */
  imageWidth?: number;
  /** `image_height` of the default body. Default 480. */
  imageHeight?: number;
  /**
   * Keep HTTP connections alive between responses. Default false: every response carries
   * `Connection: close`, so {@link MlStub.openSockets} counts only connections with a request in flight.
   */
  keepAlive?: boolean;
}

/**
 * A real HTTP server on 127.0.0.1 speaking the ML wire format (CONTRACT §8) whose behaviour tests
 * control. No HTTP mocking: the code under test does real requests to it.
 *
 * ```ts
 * const stub = new MlStub({ imageWidth: 100, imageHeight: 80 });
 * const { url } = await stub.start();           // ML_SERVICE_URL = url
 * stub.behave({ status: 500 });                 // every call from now on answers 500
 * stub.enqueue({ hang: true }, { status: 400 }); // the next two calls, then back to behave()
 * await stub.waitForCalls(3);
 * expect(stub.calls[0].body).toEqual({ image_path: 'a.png', task_id: 't1' });
 * await stub.stop(); ... await stub.restart();  // ML down, then back on the same port
 * expect(stub.openSockets()).toBe(0);           // hung requests were aborted by the client
 * ```
 *
 * Routes: `POST /segment` (recorded in {@link MlStub.calls}), `GET /health` (counted in
 * {@link MlStub.healthCalls}; answers `{ status: "healthy", model_loaded: true }` by default). Anything
 * else is 404.
 */
export class MlStub {
  /** Every `POST /segment` received, in order (also while hanging). Cleared by {@link reset}. */
  readonly calls: MlStubCall[] = [];
  /** Number of `GET /health` requests received. */
  healthCalls = 0;

  private server?: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly pending = new Set<http.ServerResponse>();
  private defaultBehaviour: MlStubBehaviour = {};
  private readonly queue: MlStubBehaviour[] = [];
  private healthBehaviour: MlStubBehaviour = {};
  private callWaiters: Array<() => void> = [];
  private boundPort = 0;

  constructor(private readonly options: MlStubOptions = {}) {}

  /** Base URL, e.g. `http://127.0.0.1:41234` (valid after {@link start}). */
  get url(): string {
    return `http://127.0.0.1:${this.boundPort}`;
  }

  /** Port (valid after {@link start}; kept across {@link stop}/{@link restart}). */
  get port(): number {
    return this.boundPort;
  }

  /** Starts listening on a free port of 127.0.0.1 (or the previous port after a stop). */
  async start(): Promise<{ url: string; port: number }> {
    if (this.server) return { url: this.url, port: this.port };
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = this.options.keepAlive ? 5000 : 1;
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    return { url: this.url, port: this.port };
  }

  /**
   * Stops listening and destroys every open connection (hung requests included), so clients see a
   * refused connection until {@link restart}. Idempotent.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    this.pending.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Starts again on the same port after {@link stop}. Behaviours and recorded calls are kept. */
  async restart(): Promise<{ url: string; port: number }> {
    await this.stop();
    return this.start();
  }

  /** Sets how every following `/segment` call is answered (after any {@link enqueue}d ones). `{}` = valid 200. */
  behave(b: MlStubBehaviour): this {
    this.defaultBehaviour = { ...b };
    return this;
  }

  /** Adds one-shot behaviours used by the next calls, in order, before falling back to {@link behave}. */
  enqueue(...bs: MlStubBehaviour[]): this {
    this.queue.push(...bs.map((b) => ({ ...b })));
    return this;
  }

  /** Sets how `GET /health` is answered. `{}` = 200 `{ status: "healthy", model_loaded: true }`. */
  behaveHealth(b: MlStubBehaviour): this {
    this.healthBehaviour = { ...b };
    return this;
  }

  /** Back to valid answers; forgets recorded calls and queued behaviours. Does not close connections. */
  reset(): this {
    this.defaultBehaviour = {};
    this.healthBehaviour = {};
    this.queue.length = 0;
    this.calls.length = 0;
    this.healthCalls = 0;
    return this;
  }

  /**
   * TCP connections currently open to the stub (hung requests count until the client aborts them).
   *
   * Note: after an aborted request, undici (the app's ML client) opens one spare idle connection per aborted
   * request slot and closes it after its keep-alive timeout (~4 s); spares are reused, so they never
   * exceed the client's concurrency. Use {@link pendingRequests} for "the aborted request's connection
   * is gone", and this (with a wait of several seconds) for "nothing is left open".
   */
  openSockets(): number {
    return this.sockets.size;
  }

  /** Requests received and not answered yet whose connection is still open (hung or delayed ones). */
  pendingRequests(): number {
    return this.pending.size;
  }

  /** Resolves once {@link pendingRequests} is `n` or less; rejects after `timeoutMs`. */
  async waitForPendingRequests(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > n) {
      if (Date.now() > deadline)
        throw new Error(`ml-stub: ${this.pending.size} requests still pending, expected <= ${n}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Resolves once at least `n` `/segment` calls were received; rejects after `timeoutMs`. */
  waitForCalls(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.callWaiters = this.callWaiters.filter((w) => w !== check);
        reject(new Error(`ml-stub: expected ${n} calls, got ${this.calls.length} within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = () => {
        if (this.calls.length < n) return;
        clearTimeout(timer);
        this.callWaiters = this.callWaiters.filter((w) => w !== check);
        resolve();
      };
      this.callWaiters.push(check);
    });
  }

  /** Resolves once {@link openSockets} is `n` or less; rejects after `timeoutMs` (see the note there). */
  async waitForOpenSockets(n: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.sockets.size > n) {
      if (Date.now() > deadline)
        throw new Error(`ml-stub: ${this.sockets.size} sockets still open, expected <= ${n}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The valid §8 `/segment` results the stub sends by default. */
  validResults(): MlSegmentResults {
    return MlStub.results(this.options.imageWidth ?? 640, this.options.imageHeight ?? 480);
  }

  /** The valid §8 `/segment` 200 body the stub sends by default. */
  validBody(): MlSegmentResponse {
    return { success: true, results: this.validResults() };
  }

  /** §8 results with one external polygon (an octagon in the middle of the image) with every feature. */
  static results(width: number, height: number): MlSegmentResults {
    const cx = width / 2;
    const cy = height / 2;
    const r = Math.max(1, Math.min(width, height) / 4);
    const points: [number, number][] = [];
    for (let i = 0; i < 8; i++) {
      const a = (i * Math.PI) / 4;
      points.push([
        Math.round((cx + r * Math.cos(a)) * 100) / 100,
        Math.round((cy + r * Math.sin(a)) * 100) / 100,
      ]);
    }
    const area = 2 * Math.SQRT2 * r * r;
    const perimeter = 16 * r * Math.sin(Math.PI / 8);
    return {
      image_width: width,
      image_height: height,
      processing_time_ms: 12,
      polygons: [
        {
          id: 1,
          type: 'external',
          parent_id: null,
          points,
          class: 'spheroid',
          confidence: 0.97,
          features: {
            area,
            perimeter,
            circularity: (4 * Math.PI * area) / (perimeter * perimeter),
            solidity: 1,
            eccentricity: 0,
            major_axis: 2 * r,
            minor_axis: 2 * r,
            orientation: 0,
            centroid_x: cx,
            centroid_y: cy,
          },
        },
      ],
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.pending.add(res);
    res.once('close', () => this.pending.delete(res));
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      const text = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && path === '/segment') {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep raw text */
        }
        this.calls.push({ method: 'POST', path, body, receivedAt: Date.now(), authorization: req.headers.authorization });
        for (const w of [...this.callWaiters]) w();
        const b = this.queue.shift() ?? this.defaultBehaviour;
        this.respond(res, b, () => this.validBody());
      } else if (req.method === 'GET' && path === '/health') {
        this.healthCalls++;
        this.respond(res, this.healthBehaviour, () => ({ status: 'healthy', model_loaded: true }));
      } else {
        this.send(res, 404, JSON.stringify({ success: false, error: 'not found' }));
      }
    });
  }

  private respond(res: http.ServerResponse, b: MlStubBehaviour, ok: () => unknown): void {
    if (b.hang) return; // stays open until the client aborts or stop()
    const answer = () => {
      if (res.destroyed || res.writableEnded) return;
      if (b.destroy) {
        res.socket?.destroy();
        return;
      }
      const status = b.status ?? 200;
      let text: string;
      if (b.raw !== undefined) text = b.raw;
      else if (b.body !== undefined) text = JSON.stringify(b.body);
      else if (status >= 200 && status < 300) text = JSON.stringify(ok());
      else text = JSON.stringify({ success: false, error: `stub error ${status}` });
      this.send(res, status, text);
    };
    if (b.latencyMs && b.latencyMs > 0) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        answer();
      }, b.latencyMs);
      this.timers.add(t);
    } else {
      answer();
    }
  }

  private send(res: http.ServerResponse, status: number, text: string): void {
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    };
    if (!this.options.keepAlive) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(text);
  }
}
