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

  it("a batch of completions writes what a lone completion writes: each task its own result, as its image's next version", async () => {
    const { token } = await t.register();
    const images: number[] = [];
    for (let i = 0; i < 4; i++) images.push(await uploadImage(t, token));
    // Image 0's task is cancelled before the batch (a gap at the head of it); images 1 and 2 complete in
    // the batch; image 3 completes alone (its own statement, `spheroseg_complete_task`), with image 1's
    // result: the reference. Image 2's result differs, so a result written at another task's position shows.
    const sizes: Array<[number, number]> = [[64, 48], [80, 60], [96, 72], [80, 60]];
    const resultsOf = (i: number) => MlStub.results(...sizes[i]);
    const taskIds: string[][] = [];
    for (let round = 0; round < 2; round++) {
      const tasks: TaskBody[] = [];
      for (const id of images) tasks.push(await (await t.request(`/api/images/${id}/segmentation`, { method: 'POST', token })).json());
      taskIds.push(tasks.map((x) => x.taskId));
      await Promise.all(tasks.map((x) => store.claim(x.taskId)));
      expect((await t.request(`/api/segmentation/tasks/${tasks[0].taskId}`, { method: 'DELETE', token })).status).toBe(200);

      const writeMany = jest.spyOn(store as unknown as { writeMany: () => unknown }, 'writeMany');
      const alone = ['claimOne', 'completeOne'].map((m) => jest.spyOn(store as unknown as Record<string, () => unknown>, m));
      const done = await Promise.all([0, 1, 2].map((i) => store.complete(tasks[i].taskId, resultsOf(i))));
      // One statement, and not retried task by task (a failed batch would still give these outcomes).
      expect(writeMany).toHaveBeenCalledTimes(1);
      expect(alone.map((spy) => spy.mock.calls.length)).toEqual([0, 0]);
      for (const spy of [writeMany, ...alone]) spy.mockRestore();
      expect(done.map((x) => x?.taskId ?? null)).toEqual([null, tasks[1].taskId, tasks[2].taskId]);
      expect(done.map((x) => x?.status ?? null)).toEqual([null, 'completed', 'completed']);
      const ref = await store.complete(tasks[3].taskId, resultsOf(3));
      expect(ref?.status).toBe('completed');
    }

    type ResultRow = { image_id: number; task_id: string; version: number; source: string; is_current: boolean; image_width: number; image_height: number; processing_time_ms: number; polygon_count: number; spheroid_count: number; polygons: string };
    const results = (await ds.query(
      `SELECT image_id, task_id, version, source, is_current, image_width, image_height, processing_time_ms,
              polygon_count, spheroid_count, polygons::text AS polygons
         FROM segmentation_results WHERE image_id = ANY($1::int[]) ORDER BY image_id, version`,
      [images],
    )) as ResultRow[];
    const of = (i: number) => results.filter((r) => r.image_id === images[i]);
    expect(of(0)).toEqual([]);
    const strip = ({ image_id: _i, task_id: _t, ...rest }: ResultRow) => rest;
    for (const i of [1, 2, 3]) {
      expect(of(i).map((r) => [r.version, r.is_current, r.source, r.task_id])).toEqual([
        [1, false, 'ml', taskIds[0][i]],
        [2, true, 'ml', taskIds[1][i]],
      ]);
      const expected = resultsOf(i);
      for (const r of of(i)) {
        expect([r.image_width, r.image_height, r.polygon_count, r.spheroid_count]).toEqual([
          expected.image_width,
          expected.image_height,
          expected.polygons.length,
          expected.polygons.filter((p) => p.type === 'external').length,
        ]);
      }
    }
    // Image 1 (batch) and image 3 (alone) got the same result: the rows match column for column.
    expect(of(1).map(strip)).toEqual(of(3).map(strip));
    expect(of(2)[1].polygons).not.toEqual(of(1)[1].polygons);

    const rows = (await ds.query(
      `SELECT q.task_id, q.status, q.progress, q.attempts, q.error_message, q.processing_completed_at IS NOT NULL AS ended,
              i.segmentation_status
         FROM queue_jobs q JOIN images i ON i.id = q.image_id WHERE q.task_id = ANY($1::uuid[])`,
      [taskIds[1]],
    )) as Array<{ task_id: string }>;
    const task = (i: number) => {
      const { task_id: _t, ...rest } = rows.find((r) => r.task_id === taskIds[1][i])!;
      return rest;
    };
    expect(task(3)).toEqual({ status: 'completed', progress: 100, attempts: 1, error_message: null, ended: true, segmentation_status: 'completed' });
    expect(task(1)).toEqual(task(3));
    expect(task(2)).toEqual(task(3));
    expect(task(0)).toMatchObject({ status: 'cancelled', attempts: 0 });
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
