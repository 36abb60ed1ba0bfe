import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ObjectStore, StorageJournal } from './object-store';
import { S3ObjectStore } from './s3-object-store';

/** How often each process looks for due entries. */
export const SWEEP_INTERVAL_MS = 10_000;
const BATCH = 100;

/**
 * The journal of objects that may have to go (table `storage_sweep`, s3 only): every upload is
 * recorded before it is stored, every deletion the store could not do at once is recorded as due now.
 * Every SWEEP_INTERVAL_MS each process takes up to {@link BATCH} due entries (SKIP LOCKED: processes
 * never take the same one) and deletes the objects — original and variants — of those no image row
 * names; an entry whose objects could not be deleted (store still down) comes back later. A successful
 * upload's entry is simply dropped once due (its image row exists), so the upload path costs one
 * INSERT and nothing after.
 */
@Injectable()
export class StorageSweeper implements StorageJournal, OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(StorageSweeper.name);
  private timer?: NodeJS.Timeout;
  private running?: Promise<number>;
  private again?: Promise<number>;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly store: ObjectStore,
  ) {}

  onModuleInit(): void {
    if (!(this.store instanceof S3ObjectStore)) return;
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  async record(key: string, dueInMs: number): Promise<void> {
    await this.db.query(
      `INSERT INTO storage_sweep (key, due_at) VALUES ($1, now() + $2 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET due_at = LEAST(storage_sweep.due_at, EXCLUDED.due_at)`,
      [key, dueInMs],
    );
  }

  /**
   * One pass (also called by tests and the copy command): returns how many objects' sets were deleted.
   * Asked for while a pass is under way (the timer's), it runs once more after that one, which may have
   * read the journal before the caller's entries were due; callers waiting meanwhile share that pass.
   */
  sweep(): Promise<number> {
    if (!this.running) {
      this.running = this.pass().finally(() => (this.running = undefined));
      return this.running;
    }
    this.again ??= this.running
      .catch(() => 0)
      .then(() => {
        this.again = undefined;
        return this.sweep();
      });
    return this.again;
  }

  private async pass(): Promise<number> {
    if (!(this.store instanceof S3ObjectStore)) return 0;
    let removed = 0;
    for (;;) {
      const res = (await this.db.query(
        `DELETE FROM storage_sweep s WHERE s.key IN (
           SELECT key FROM storage_sweep WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING s.key, EXISTS (SELECT 1 FROM images i WHERE i.storage_path = s.key) AS kept`,
        [BATCH],
      )) as unknown[];
      // TypeORM answers a DELETE … RETURNING with [rows, affected].
      const rows = (Array.isArray(res[0]) ? res[0] : res) as Array<{ key: string; kept: boolean }>;
      for (const r of rows) {
        if (r.kept) continue;
        try {
          await this.store.removeNow(r.key);
          removed++;
        } catch {
          await this.record(r.key, SWEEP_INTERVAL_MS);
        }
      }
      if (rows.length < BATCH) break;
    }
    if (removed > 0) this.logger.log({ removed }, 'storage sweeper removed left-over objects');
    return removed;
  }
}
