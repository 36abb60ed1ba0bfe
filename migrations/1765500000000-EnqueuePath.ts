import { MigrationInterface, QueryRunner } from 'typeorm';
import { DROP_ENQUEUE, enqueueWithBudget } from './1765400000000-EnqueueBudget';

/**
 * `spheroseg_enqueue` also answers each task's image storage key (`o_path`), so the Bull job can carry it
 * as a hint (`SegmentJobData.storagePath`): a worker then starts the ML call alongside its claim without
 * reading the task and image first (one statement per task less; issue 24). The claim still reads the
 * key from PostgreSQL, and its answer decides. The result type changes, hence DROP and CREATE.
 */
export class EnqueuePath1765500000000 implements MigrationInterface {
  name = 'EnqueuePath1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(DROP_ENQUEUE);
    await q.query(enqueueWithBudget(true));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(DROP_ENQUEUE);
    await q.query(enqueueWithBudget(false));
  }
}
