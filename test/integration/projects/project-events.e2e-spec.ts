import { io, Socket } from 'socket.io-client';
import { startTestApp, TestApp, TestResponse } from '../../support/app';
import { MlStub } from '../../support/ml-stub';
import { RealtimePublisher } from '../../../src/realtime/realtime.publisher';
import { makePng, uploadImage } from '../../support/fixtures';
import type {
  ClientToServerEvents,
  ProjectSubscribeAck,
  ServerToClientEvents,
} from '../../../src/common/contracts';

/**
 * Project rooms through the whole pipeline (CONTRACT §6): a viewer subscribed to a project receives
 * every event of a task of the project's images queued by somebody else — queued, progress,
 * completed from the worker, cancelled — each carrying `projectId`; events of a personal image carry
 * none and reach only its owner.
 */
type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

describe('project rooms: every event of a project task, with projectId', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let t: TestApp;
  const sockets: ClientSocket[] = [];

  const connect = async (token: string) => {
    const events: Array<{ event: string; payload: Record<string, unknown> }> = [];
    const socket: ClientSocket = io(t.url, { auth: { token }, transports: ['websocket'] });
    sockets.push(socket);
    socket.onAny((event: string, payload: Record<string, unknown>) => events.push({ event, payload }));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    return { socket, events };
  };
  const waitFor = async (
    events: Array<{ event: string; payload: Record<string, unknown> }>,
    event: string,
    taskId: string,
  ) => {
    for (let i = 0; i < 200; i++) {
      const e = events.find((x) => x.event === event && x.payload.taskId === taskId);
      if (e) return e.payload;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${event} for ${taskId}`);
  };

  /** Uploads a PNG into project `projectId`; its image id. */
  const uploadTo = async (token: string, projectId: number, name: string): Promise<number> => {
    const form = new FormData();
    form.append('file', new Blob([await makePng()]), name);
    const up = (await fetch(`${t.url}/api/projects/${projectId}/images`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${token}` },
    })) as TestResponse;
    return (await up.json()).id as number;
  };

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({
      QUEUE_NAME: `${process.env.QUEUE_NAME}_projev`,
      ML_SERVICE_URL: stub.url,
      QUEUE_CONCURRENCY: '1',
    });
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t?.close();
    await stub.stop();
  });

  it('a subscribed viewer gets queued, progress, completed and cancelled of another member’s tasks, all with projectId', async () => {
    const owner = await t.register();
    const viewer = await t.register();
    const p = (
      await (
        await t.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'Rooms' } })
      ).json()
    ).id as number;
    await t.request(`/api/projects/${p}/members`, {
      method: 'POST',
      token: owner.token,
      json: { email: viewer.user.email, role: 'viewer' },
    });
    const v = await connect(viewer.token);
    const ack = await new Promise<ProjectSubscribeAck>((resolve) =>
      v.socket.emit('project:subscribe', { projectId: p }, resolve),
    );
    expect(ack).toEqual({ ok: true });

    const imageId = await uploadTo(owner.token, p, 'p.png');
    const task = await (
      await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token: owner.token, json: {} })
    ).json();
    for (const ev of ['segmentation:queued', 'segmentation:progress', 'segmentation:completed']) {
      expect(await waitFor(v.events, ev, task.taskId)).toMatchObject({
        taskId: task.taskId,
        imageId,
        projectId: p,
      });
    }
    // A cancel: a second image, the worker held by a slow stub so the task stays open.
    stub.behave({ latencyMs: 3000 });
    const img2 = await uploadTo(owner.token, p, 'q.png');
    const t2 = await (
      await t.request(`/api/images/${img2}/segmentation`, { method: 'POST', token: owner.token, json: {} })
    ).json();
    expect(
      (await t.request(`/api/segmentation/tasks/${t2.taskId}`, { method: 'DELETE', token: owner.token }))
        .status,
    ).toBe(200);
    expect(await waitFor(v.events, 'segmentation:cancelled', t2.taskId)).toEqual({
      taskId: t2.taskId,
      imageId: img2,
      projectId: p,
    });
    stub.behave({});

    // A personal image of the owner: no projectId, and the viewer gets nothing of it.
    const o = await connect(owner.token);
    const personal = await uploadImage(t, owner.token);
    const t3 = await (
      await t.request(`/api/images/${personal}/segmentation`, {
        method: 'POST',
        token: owner.token,
        json: {},
      })
    ).json();
    const done = await waitFor(o.events, 'segmentation:completed', t3.taskId);
    expect(done.projectId).toBeUndefined();
    expect(v.events.some((e) => e.payload.taskId === t3.taskId)).toBe(false);
  });
  it('the queued event of a new task leaves with its job, in one Redis round trip, and reaches the owner and the project room once each', async () => {
    const owner = await t.register();
    const p = (
      await (await t.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'One trip' } })).json()
    ).id as number;
    const o = await connect(owner.token);
    expect(await new Promise((resolve) => o.socket.emit('project:subscribe', { projectId: p }, resolve))).toEqual({ ok: true });
    const imageId = await uploadTo(owner.token, p, 'one.png');
    const realtime = t.app.get(RealtimePublisher);
    const sentApart = jest.spyOn(realtime, 'toTask');
    try {
      const task = await (
        await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token: owner.token, json: {} })
      ).json();
      expect(await waitFor(o.events, 'segmentation:queued', task.taskId)).toEqual({
        taskId: task.taskId,
        imageId,
        projectId: p,
        priority: task.priority,
      });
      expect(sentApart.mock.calls.filter(([, ev]) => ev === 'segmentation:queued')).toEqual([]);
      await waitFor(o.events, 'segmentation:completed', task.taskId);
      // In the user's room and the project's: one delivery, as for every task event.
      expect(o.events.filter((e) => e.event === 'segmentation:queued' && e.payload.taskId === task.taskId)).toHaveLength(1);
    } finally {
      sentApart.mockRestore();
    }
  });
});
