import { DataSource } from 'typeorm';
import { TaskStore } from '../../src/segmentation/task.store';
import { startTestApp, TestApp } from '../support/app';
import { MlStub } from '../support/ml-stub';
import { uploadImage, TaskBody } from '../support/fixtures';

/**
 * The worker's claims and completions made at the same time leave as one multi-row statement
 * (real PostgreSQL); each caller still gets exactly its own task's outcome.
 */
describe('TaskStore: coalesced claims and completions', () => {
  const stub = new MlStub();
  let t: TestApp;
  let store: TaskStore;
  let ds: DataSource;

  beforeAll(async () => {
    await stub.start();
    // api role: tasks are enqueued but nothing consumes them; the test plays the worker.
    t = await startTestApp(
      { QUEUE_NAME: `${process.env.QUEUE_NAME}_batching`, ML_SERVICE_URL: stub.url },
      'api',
    );
    store = t.app.get(TaskStore);
    ds = t.app.get(DataSource);
  });
  afterAll(async () => {
    await t.close();
    await stub.stop();
  });

  it('claims several tasks in one statement and completes them in one, with per-task outcomes', async () => {
    const { token } = await t.register();
    const tasks: TaskBody[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await uploadImage(t, token);
      tasks.push(await (await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token })).json());
    }
    const [a, b, c, gone] = tasks;
    expect(
      (await t.request(`/api/segmentation/tasks/${gone.taskId}`, { method: 'DELETE', token })).status,
    ).toBe(200);

    const writeMany = jest.spyOn(store as unknown as { writeMany: () => unknown }, 'writeMany');
    const claimed = await Promise.all([a, b, c, gone].map((x) => store.claim(x.taskId)));
    expect(writeMany).toHaveBeenCalledTimes(1);
    expect(claimed.map((x) => x?.taskId ?? null)).toEqual([a.taskId, b.taskId, c.taskId, null]);
    for (const x of claimed.slice(0, 3)) {
      expect(x?.status).toBe('processing');
      expect(x?.storagePath).toEqual(expect.any(String));
    }

    // c is cancelled while processing; a is completed twice in the same batch (two runs of one job).
    expect((await t.request(`/api/segmentation/tasks/${c.taskId}`, { method: 'DELETE', token })).status).toBe(
      200,
    );
    writeMany.mockClear();
    const results = stub.validResults();
    const done = await Promise.all([a, b, c, a].map((x) => store.complete(x.taskId, results)));
    expect(writeMany).toHaveBeenCalledTimes(1);
    writeMany.mockRestore();
    expect(done.map((x) => x?.taskId ?? null)).toEqual([a.taskId, b.taskId, null, null]);
    expect(done[0]?.status).toBe('completed');

    const rows = await ds.query(
      `SELECT q.task_id, q.status, i.segmentation_status, (SELECT count(*)::int FROM segmentation_results r WHERE r.task_id = q.task_id) AS results
         FROM queue_jobs q JOIN images i ON i.id = q.image_id WHERE q.task_id = ANY($1::uuid[])`,
      [tasks.map((x) => x.taskId)],
    );
    const by = new Map(
      (rows as Array<{ task_id: string; status: string; segmentation_status: string; results: number }>).map(
        (r) => [r.task_id, r],
      ),
    );
    expect(by.get(a.taskId)).toMatchObject({
      status: 'completed',
      segmentation_status: 'completed',
      results: 1,
    });
    expect(by.get(b.taskId)).toMatchObject({
      status: 'completed',
      segmentation_status: 'completed',
      results: 1,
    });
    expect(by.get(c.taskId)).toMatchObject({ status: 'cancelled', results: 0 });
    expect(by.get(gone.taskId)).toMatchObject({ status: 'cancelled', results: 0 });
  });

  it('a completion and the next claims made in the same turn share one statement (one commit), each with its own outcome', async () => {
    const { token } = await t.register();
    const tasks: TaskBody[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await uploadImage(t, token);
      tasks.push(await (await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token })).json());
    }
    const [done1, done2, next, gone] = tasks;
    expect((await t.request(`/api/segmentation/tasks/${gone.taskId}`, { method: 'DELETE', token })).status).toBe(200);
    await Promise.all([done1, done2].map((x) => store.claim(x.taskId)));

    const writeMany = jest.spyOn(store as unknown as { writeMany: () => unknown }, 'writeMany');
    // A batch that fails is run item by item: then they would not have shared anything.
    const alone = ['claimOne', 'completeOne'].map((m) => jest.spyOn(store as unknown as Record<string, () => unknown>, m));
    const results = stub.validResults();
    // What a slot does when its ML call returns: complete that job, claim the next (and another slot likewise).
    const [c1, n1, c2, n2] = await Promise.all([
      store.complete(done1.taskId, results),
      store.claim(next.taskId),
      store.complete(done2.taskId, results),
      store.claim(gone.taskId),
    ]);
    expect(writeMany).toHaveBeenCalledTimes(1);
    expect(alone.map((spy) => spy.mock.calls.length)).toEqual([0, 0]);
    for (const spy of [writeMany, ...alone]) spy.mockRestore();
    expect([c1?.taskId, c1?.status, c2?.taskId, c2?.status]).toEqual([done1.taskId, 'completed', done2.taskId, 'completed']);
    expect([n1?.taskId, n1?.status]).toEqual([next.taskId, 'processing']);
    expect(n1?.storagePath).toEqual(expect.any(String));
    expect(n2).toBeNull(); // cancelled: not claimed
    const rows = (await ds.query(
      `SELECT q.task_id, q.status, i.segmentation_status, (SELECT count(*)::int FROM segmentation_results r WHERE r.task_id = q.task_id) AS results
         FROM queue_jobs q JOIN images i ON i.id = q.image_id WHERE q.task_id = ANY($1::uuid[])`,
      [tasks.map((x) => x.taskId)],
    )) as Array<{ task_id: string; status: string; segmentation_status: string; results: number }>;
    const by = new Map(rows.map((r) => [r.task_id, r]));
    expect(by.get(done1.taskId)).toMatchObject({ status: 'completed', segmentation_status: 'completed', results: 1 });
    expect(by.get(done2.taskId)).toMatchObject({ status: 'completed', segmentation_status: 'completed', results: 1 });
    expect(by.get(next.taskId)).toMatchObject({ status: 'processing', segmentation_status: 'processing', results: 0 });
    expect(by.get(gone.taskId)).toMatchObject({ status: 'cancelled', results: 0 });
  });

  it('reads the tasks of concurrent requests in one statement, each only for its owner', async () => {
    const alice = await t.register();
    const bob = await t.register();
    const post = async (token: string): Promise<TaskBody> =>
      (
        await t.request(`/api/images/${await uploadImage(t, token)}/segmentation`, { method: 'POST', token })
      ).json();
    const [a, b] = [await post(alice.token), await post(bob.token)];
    const missing = '00000000-0000-4000-8000-000000000000';

    const readMany = jest.spyOn(
      store as unknown as { findWithImageMany: () => unknown },
      'findWithImageMany',
    );
    const asks = [a.taskId, b.taskId, missing, a.taskId];
    const got = await Promise.all(asks.map((id) => store.findWithImage(id)));
    expect(readMany).toHaveBeenCalledTimes(1);
    expect(got.map((x) => x?.task.taskId ?? null)).toEqual([a.taskId, b.taskId, null, a.taskId]);
    expect(got[0]).toMatchObject({
      imageUserId: alice.user.id,
      projectId: null,
      task: { imageId: a.imageId, userId: alice.user.id, status: 'queued' },
    });
    expect(got[1]).toMatchObject({ imageUserId: bob.user.id });

    // A read asked after a change sees it, batched or not.
    expect(
      (await t.request(`/api/segmentation/tasks/${a.taskId}`, { method: 'DELETE', token: alice.token }))
        .status,
    ).toBe(200);
    const again = await Promise.all([store.findWithImage(a.taskId), store.findWithImage(b.taskId)]);
    expect(again.map((x) => x?.task.status)).toEqual(['cancelled', 'queued']);
    readMany.mockRestore();
  });
});
