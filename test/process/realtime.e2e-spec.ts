import { io, Socket } from 'socket.io-client';
import type { ServerToClientEvents } from '../../src/common/contracts';
import { eventually, makePng, TaskBody, uploadImage, waitForTask } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import { BackendProcess, startProcesses, stopAllProcesses } from '../support/processes';

/**
 * Socket.IO across processes (CONTRACT §6): 2 api + 2 worker processes on one PostgreSQL and Redis.
 * Events of a task enqueued through one api process and run by some worker reach the user's socket on
 * the other api process, in order, and nobody else's; `ml:status` reaches everybody on connect and on
 * every change of the circuit.
 */
type ClientSocket = Socket<ServerToClientEvents>;
interface Received {
  event: string;
  payload: { taskId?: string; state?: string; available?: boolean; [k: string]: unknown };
}

describe('realtime across processes (2 api + 2 workers)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let api1: BackendProcess;
  let api2: BackendProcess;
  const sockets: ClientSocket[] = [];
  let png: Buffer;
  let workers: BackendProcess[] = [];

  /** Connects to `p` and records every event from the first one on. Resolves once connected. */
  const connect = async (
    p: BackendProcess,
    token: string,
  ): Promise<{ socket: ClientSocket; events: Received[] }> => {
    const events: Received[] = [];
    const socket: ClientSocket = io(p.url, {
      path: '/socket.io',
      auth: { token },
      transports: ['websocket'],
      reconnection: false,
    });
    sockets.push(socket);
    socket.onAny((event: string, payload: Received['payload']) => events.push({ event, payload }));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`socket to ${p.name} did not connect`)), 10_000);
      socket.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      socket.once('connect_error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    return { socket, events };
  };

  beforeAll(async () => {
    png = await makePng();
    await stub.start();
    const env = {
      QUEUE_NAME: `${process.env.QUEUE_NAME}_rt`,
      ML_SERVICE_URL: stub.url,
      ML_BREAKER_VOLUME_THRESHOLD: '2',
      ML_BREAKER_RESET_TIMEOUT: '1000',
      QUEUE_BACKOFF_DELAY: '200',
      QUEUE_MAX_ATTEMPTS: '20', // tasks outlive the ML outage below
      SHUTDOWN_TIMEOUT: '8000',
    };
    [api1, api2, ...workers] = await startProcesses([
      { role: 'api', name: 'api#1', env },
      { role: 'api', name: 'api#2', env },
      { role: 'worker', name: 'worker#1', env },
      { role: 'worker', name: 'worker#2', env },
    ]);
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await stopAllProcesses();
    await stub.stop();
  });

  it('delivers queued → progress → completed to the owner on the other api process, and nothing to another user', async () => {
    stub.behave({ latencyMs: 200 });
    const a = await api1.register();
    const b = await api1.register();
    const sa = await connect(api2, a.token);
    const sb2 = await connect(api2, b.token);
    const sb1 = await connect(api1, b.token);

    const imageId = await uploadImage(api1, a.token, png);
    const res = await api1.request(`/api/images/${imageId}/segmentation`, {
      method: 'POST',
      token: a.token,
      json: {},
    });
    expect(res.status).toBe(202);
    const task = (await res.json()) as TaskBody;

    await eventually(
      async () =>
        sa.events.some((e) => e.event === 'segmentation:completed' && e.payload.taskId === task.taskId),
      20_000,
    );
    const mine = sa.events.filter((e) => e.payload.taskId === task.taskId).map((e) => e.event);
    expect(mine[0]).toBe('segmentation:queued');
    expect(mine[mine.length - 1]).toBe('segmentation:completed');
    expect(mine.slice(1, -1).length).toBeGreaterThanOrEqual(1);
    expect(mine.slice(1, -1).every((e) => e === 'segmentation:progress')).toBe(true);
    expect(sa.events.find((e) => e.event === 'segmentation:queued')?.payload).toEqual({
      taskId: task.taskId,
      imageId,
      priority: 1,
    });
    expect(sa.events.find((e) => e.event === 'segmentation:completed')?.payload).toMatchObject({
      taskId: task.taskId,
      imageId,
      polygonCount: 1,
      spheroidCount: 1,
    });

    await new Promise((r) => setTimeout(r, 500)); // anything misrouted would have arrived by now
    for (const other of [sb1, sb2]) {
      expect(other.events.filter((e) => e.event.startsWith('segmentation:'))).toEqual([]);
      expect(other.events.map((e) => e.event)).toContain('ml:status');
    }
  });

  it('sends ml:status on connect, `open` when the ML service fails enough, and `closed` once it is back', async () => {
    stub.behave({});
    const u = await api1.register();
    const watcher = await connect(api2, (await api2.register()).token);
    const first = await eventually(async () => watcher.events.find((e) => e.event === 'ml:status'), 5000);
    expect(first.payload).toEqual({ state: 'closed', available: true });

    await stub.stop();
    const tasks: TaskBody[] = [];
    for (let i = 0; i < 4; i++) {
      const imageId = await uploadImage(api1, u.token, png);
      tasks.push(
        (await (
          await api1.request(`/api/images/${imageId}/segmentation`, {
            method: 'POST',
            token: u.token,
            json: {},
          })
        ).json()) as TaskBody,
      );
    }
    const statuses = () => watcher.events.filter((e) => e.event === 'ml:status').map((e) => e.payload);
    await eventually(async () => statuses().some((s) => s.state === 'open'), 30_000);
    const openAt = statuses().findIndex((s) => s.state === 'open');
    expect(statuses()[openAt]).toEqual({ state: 'open', available: false });

    await stub.restart();
    await eventually(
      async () =>
        statuses()
          .slice(openAt + 1)
          .some((s) => s.state === 'closed'),
      30_000,
    );
    expect(
      statuses()
        .slice(openAt + 1)
        .find((s) => s.state === 'closed'),
    ).toEqual({ state: 'closed', available: true });

    // The tasks waited out the outage and ran once the circuit closed.
    // Every worker is still responsive once the circuit has closed (its event loop is not starved).
    for (const w of workers) {
      const live = await w.request('/api/health/live', { timeoutMs: 5000 }).then(
        (r) => r.status,
        (err: Error) => `no answer (${err.name})`,
      );
      expect({ worker: w.name, live }).toEqual({ worker: w.name, live: 200 });
    }
    const done = await Promise.all(tasks.map((t) => waitForTask(api1, u.token, t.taskId, undefined, 30_000)));
    expect(done.map((d) => d.status)).toEqual(Array(4).fill('completed'));
  });
});
