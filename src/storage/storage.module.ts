import { DynamicModule, Global, Module, Provider } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import { storageConfig } from '../config/configuration';
import { LocalObjectStore } from './local-object-store';
import { ObjectStore, StorageJournal } from './object-store';
import { S3ObjectStore } from './s3-object-store';
import { StorageHealthIndicator } from './storage.health';
import { StorageSweeper } from './storage-sweeper';

/** The journal the s3 driver records uploads in; the sweeper reads it (same table, no cycle at run time). */
class JournalProxy implements StorageJournal {
  target?: StorageJournal;
  record(key: string, dueInMs: number): Promise<void> {
    return this.target ? this.target.record(key, dueInMs) : Promise.resolve();
  }
}

const JOURNAL = Symbol('STORAGE_JOURNAL');

/** Builds the driver STORAGE_DRIVER names (CONTRACT §9). */
export function createObjectStore(
  cfg: ConfigType<typeof storageConfig>,
  journal?: StorageJournal,
): ObjectStore {
  return cfg.driver === 's3' ? new S3ObjectStore(cfg.s3, journal) : new LocalObjectStore(cfg.uploadDir);
}

const providers: Provider[] = [
  { provide: JOURNAL, useFactory: () => new JournalProxy() },
  {
    provide: ObjectStore,
    inject: [storageConfig.KEY, JOURNAL],
    useFactory: (cfg: ConfigType<typeof storageConfig>, journal: JournalProxy) =>
      createObjectStore(cfg, journal),
  },
  {
    provide: StorageSweeper,
    inject: [getDataSourceToken(), ObjectStore, JOURNAL],
    useFactory: (db: DataSource, store: ObjectStore, journal: JournalProxy) => {
      const sweeper = new StorageSweeper(db, store);
      journal.target = sweeper;
      return sweeper;
    },
  },
];

/**
 * Image storage (CONTRACT §9): the ObjectStore of STORAGE_DRIVER — `local` (UPLOAD_DIR) or `s3` — for
 * every module that reads or writes image files (images, media, the ML call, the worker), the sweeper
 * of left-over objects (s3), and `storage` health (s3 only). Global, like the database: one store per
 * process. Needs the global config and DatabaseModule.
 */
@Global()
@Module({})
export class StorageModule {
  static forDriver(driver: 'local' | 's3'): DynamicModule {
    return {
      module: StorageModule,
      global: true,
      providers: [...providers, ...(driver === 's3' ? [StorageHealthIndicator] : [])],
      exports: [ObjectStore, StorageSweeper],
    };
  }
}
