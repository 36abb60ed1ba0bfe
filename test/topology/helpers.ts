import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { io, Socket } from 'socket.io-client';
import type { ServerToClientEvents } from '../../src/common/contracts';
import { makePng } from '../support/fixtures';
import { MlStub } from '../support/ml-stub';
import type { BackendProcess } from '../support/processes';

/** Shared pieces of the topology suites (real processes from the build against real topologies). */

export { sleep, until, statusOf, summarize, waitAllCompleted, type TaskSummary } from '../support/checks';

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(4).toString('hex')}`;

/**
 * Environment of a backend process: the topology variables are removed unless `extra` sets them, so
 * nothing leaks from the caller's shell; short reconcile/backoff timings keep the suite fast.
 */
export function backendEnv(
  stub: MlStub,
  extra: Record<string, string | undefined>,
): Record<string, string | undefined> {
  return {
    REDIS_CLUSTER_NODES: undefined,
    REDIS_SENTINELS: undefined,
    REDIS_SENTINEL_NAME: undefined,
    DATABASE_REPLICA_URLS: undefined,
    ML_SERVICE_URL: stub.url,
    QUEUE_BACKOFF_DELAY: '200',
    RECONCILE_INTERVAL_MS: '0',
    RATE_LIMIT_PER_MINUTE: '100000',
    SHUTDOWN_TIMEOUT: '8000',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** A pg client (ended by the caller); errors of a server going away are swallowed. */
export async function sqlClient(url: string): Promise<Client> {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

let png: Buffer | undefined;

/** Uploads `n` images (n requests) and enqueues them in one batch (1 request); returns the task ids. */
export async function uploadAndEnqueue(api: BackendProcess, token: string, n: number): Promise<string[]> {
  png ??= await makePng();
  const imageIds: number[] = [];
  for (let i = 0; i < n; i++) {
    const form = new FormData();
    form.append('file', new Blob([png]), `s${i}.png`);
    const res = await api.request('/api/images', { method: 'POST', body: form, token, timeoutMs: 10_000 });
    if (res.status !== 201) throw new Error(`upload through ${api.name}: ${res.status} ${await res.text()}`);
    imageIds.push(((await res.json()) as { id: number }).id);
  }
  const res = await api.request('/api/segmentation/batch', {
    method: 'POST',
    token,
    json: { imageIds },
    timeoutMs: 15_000,
  });
  if (res.status !== 202) throw new Error(`batch through ${api.name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { tasks: { taskId: string }[] }).tasks.map((t) => t.taskId);
}

export interface Received {
  event: string;
  payload: { taskId?: string; [k: string]: unknown };
}

/** A Socket.IO client on `p` recording every event; resolves once connected. Disconnect it yourself. */
export async function connectSocket(
  p: BackendProcess,
  token: string,
): Promise<{ socket: Socket<ServerToClientEvents>; events: Received[] }> {
  const events: Received[] = [];
  const socket: Socket<ServerToClientEvents> = io(p.url, {
    path: '/socket.io',
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
  });
  socket.onAny((event: string, payload: Received['payload']) => events.push({ event, payload }));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`socket to ${p.name} did not connect`)), 10_000);
    socket.once('connect', () => (clearTimeout(t), resolve()));
    socket.once('connect_error', (e) => (clearTimeout(t), reject(e)));
  });
  return { socket, events };
}
