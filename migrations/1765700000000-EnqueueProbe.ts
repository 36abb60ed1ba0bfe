import { MigrationInterface, QueryRunner } from 'typeorm';
import { enqueueWithBudget } from './1765400000000-EnqueueBudget';

/**
 * `spheroseg_enqueue` checks each image for an open task with one index probe, whatever plan a
 * connection cached while the table was small (see OPEN_TASK_PROBE in EnqueueBudget). Same signature and
 * result type: the function is replaced.
 */
export class EnqueueProbe1765700000000 implements MigrationInterface {
  name = 'EnqueueProbe1765700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(enqueueWithBudget(true, true));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(enqueueWithBudget(true));
  }
}
