import { io, Socket } from 'socket.io-client';
import { startTestApp, TestApp } from '../../support/app';
import { MlStub } from '../../support/ml-stub';
import { uploadImage } from '../../support/fixtures';

describe('segmentation:completed counts (CONTRACT §6)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let t: TestApp;
  let socket: Socket;
  let token: string;

  beforeAll(async () => {
    await stub.start();
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_counts`, ML_SERVICE_URL: stub.url, QUEUE_CONCURRENCY: '1' });
    ({ token } = await t.register());
    socket = io(t.url, { auth: { token }, transports: ['websocket'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
  });
  afterAll(async () => {
    socket?.close();
    await t?.close();
    await stub.stop();
  });

  it('polygonCount = result.polygons.length (holes included), spheroidCount = the external ones', async () => {
    const base = MlStub.results(64, 48);
    const ext = base.polygons[0];
    const results = {
      ...base,
      polygons: [
        ext,
        { ...ext, id: 2, type: 'internal' as const, parent_id: 1 },
        { ...ext, id: 3, type: 'internal' as const, parent_id: 1 },
        { ...ext, id: 4 },
      ],
    };
    stub.behave({ body: { success: true, results } });
    const imageId = await uploadImage(t, token);
    const completed = new Promise<Record<string, unknown>>((resolve) => socket.on('segmentation:completed', resolve));
    const res = await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json: {} });
    const { taskId } = (await res.json()) as { taskId: string };
    const event = await completed;
    const result = (await (await t.request(`/api/images/${imageId}/segmentation`, { token })).json()) as { polygons: unknown[] };
    expect(result.polygons).toHaveLength(4);
    expect(event).toEqual({ taskId, imageId, polygonCount: 4, spheroidCount: 2, processingTimeMs: expect.any(Number) });
  });
});
