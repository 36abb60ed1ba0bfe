import { randomUUID } from 'node:crypto';
import type { EnqueueItem, EnqueueOutcome, TaskStore } from './task.store';
import type { TaskEntity } from './task.entity';

/** Most images decided in one call (a batch request of 500 ids is never split). */
const MAX_ITEMS_PER_CALL = 1000;

interface Pending {
  /** The projects the user may edit, as the request's access check saw them. */
  projects: number[];
  imageIds: number[];
  priority: number;
  resolve(o: EnqueueOutcome): void;
  reject(err: unknown): void;
}

interface UserLane {
  running: boolean;
  waiting: Pending[];
}

/**
 * Coalesces the concurrent enqueues of one user in this process into one `spheroseg_enqueue` call.
 *
 * The pending-task limit must stay exact across processes, so a user's enqueues are decided under a
 * per-user lock in PostgreSQL, which is held until the commit is flushed to disk (milliseconds): one
 * call per request would cap one user (a frontend sends its requests in parallel) at one commit per
 * flush. Instead, while a call for a user is in flight, that user's further requests wait here and go
 * together into the next call, each still decided on its own, in arrival order. `onCreated` runs for
 * every call's new tasks (it hands them to the queue) before the call's requests are answered.
 */
export class EnqueueBatcher {
  private readonly lanes = new Map<number, UserLane>();

  constructor(
    private readonly store: Pick<TaskStore, 'enqueueMany'>,
    private readonly maxPending: () => number,
    private readonly onCreated: (tasks: TaskEntity[]) => Promise<void>,
  ) {}

  submit(userId: number, projects: number[], imageIds: number[], priority: number): Promise<EnqueueOutcome> {
    return new Promise<EnqueueOutcome>((resolve, reject) => {
      let lane = this.lanes.get(userId);
      if (!lane) this.lanes.set(userId, (lane = { running: false, waiting: [] }));
      lane.waiting.push({ projects, imageIds, priority, resolve, reject });
      if (!lane.running) void this.run(userId, lane);
    });
  }

  private async run(userId: number, lane: UserLane): Promise<void> {
    lane.running = true;
    try {
      while (lane.waiting.length > 0) {
        const batch: Pending[] = [];
        let n = 0;
        while (
          lane.waiting.length > 0 &&
          (batch.length === 0 || n + lane.waiting[0].imageIds.length <= MAX_ITEMS_PER_CALL)
        ) {
          const p = lane.waiting.shift()!;
          batch.push(p);
          n += p.imageIds.length;
        }
        // Returns once PostgreSQL answered: the next call may start (the lock is released) while this
        // one's requests are answered after their new tasks are queued.
        await this.decide(userId, batch);
      }
    } finally {
      lane.running = false;
      if (lane.waiting.length === 0) this.lanes.delete(userId);
      else void this.run(userId, lane);
    }
  }

  /** One call for `batch`; resolves when the call returned (the answers follow after dispatch). */
  private async decide(userId: number, batch: Pending[]): Promise<void> {
    const items: EnqueueItem[] = [];
    batch.forEach((p, req) => {
      for (const imageId of p.imageIds)
        items.push({ req, imageId, taskId: randomUUID(), priority: p.priority });
    });
    let outcomes: Map<number, EnqueueOutcome>;
    try {
      // The most recent view of the user's projects (the requests of one call are of one user).
      outcomes = await this.call(userId, batch[batch.length - 1].projects, items);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    const created = [...outcomes.values()].flatMap((o) => (o.kind === 'ok' ? o.created : []));
    void (async () => {
      if (created.length > 0) await this.onCreated(created).catch(() => undefined);
      batch.forEach((p, req) => {
        const o = outcomes.get(req);
        if (o) p.resolve(o);
        else p.reject(new Error('enqueue returned no outcome for a request'));
      });
    })();
  }

  /**
   * A concurrent dead-letter retry (which does not take the user's lock) may open a task for one of
   * the images between our check and insert: the partial unique index refuses the insert (23505) and
   * the call is simply made again (it then finds that open task).
   */
  private async call(
    userId: number,
    projects: number[],
    items: EnqueueItem[],
  ): Promise<Map<number, EnqueueOutcome>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.enqueueMany(userId, projects, items, this.maxPending());
      } catch (err) {
        if ((err as { code?: string }).code !== '23505' || attempt >= 2) throw err;
      }
    }
  }
}
