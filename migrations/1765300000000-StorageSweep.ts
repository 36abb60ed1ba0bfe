import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `storage_sweep` (STORAGE_DRIVER=s3, CONTRACT §9): objects that may have to be deleted — an upload is
 * recorded before it is stored, a deletion the store could not do at once is recorded as due now. The
 * sweeper deletes the objects of due entries that no image row names (see src/storage/storage-sweeper.ts).
 * A new, empty table: no existing data to carry over.
 */
export class StorageSweep1765300000000 implements MigrationInterface {
  name = 'StorageSweep1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE storage_sweep (
        key     VARCHAR(255) PRIMARY KEY,
        due_at  TIMESTAMPTZ NOT NULL
      )`);
    await q.query(`CREATE INDEX idx_storage_sweep_due ON storage_sweep (due_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE storage_sweep`);
  }
}
