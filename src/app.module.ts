import { DynamicModule, Module, Type } from '@nestjs/common';
import { AppConfigModule } from './config/config.module';
import { LoggingModule } from './common/logging';
import { ShutdownModule } from './common/shutdown-state';
import { MetricsModule } from './metrics/metrics.module';
import { RedisModule } from './redis/redis.module';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { AuthModule } from './auth/auth.module';
import { ImagesModule } from './images/images.module';
import { SegmentationModule } from './segmentation/segmentation.module';
import { QueueWorkerModule } from './queue/worker/queue-worker.module';
import { RealtimeModule } from './realtime/realtime.module';
import { MlModule } from './ml/ml.module';
import { MediaModule } from './media/media.module';
import { ExportsModule } from './exports/exports.module';
import { AccessModule } from './access/access.module';
import { ProjectsModule } from './projects/projects.module';
import type { AppRole } from './config/app-role';
import { storageConfig } from './config/configuration';
import { StorageModule } from './storage/storage.module';

/**
 * The application for one role (CONTRACT §1): `api` serves REST + Socket.IO and only enqueues,
 * `worker` consumes the queue and serves only health and metrics, `all` is both in one process.
 */
@Module({})
export class AppModule {
  static forRole(role: AppRole): DynamicModule {
    const serves = role === 'api' || role === 'all';
    const common: Array<Type | DynamicModule> = [
      AppConfigModule.forRoot(),
      LoggingModule,
      ShutdownModule,
      MetricsModule,
      RedisModule,
      DatabaseModule,
      StorageModule.forDriver(storageConfig().driver),
      HealthModule,
    ];
    const api: Array<Type | DynamicModule> = serves
      ? [AccessModule, AuthModule, ImagesModule, MediaModule, ExportsModule, ProjectsModule.forRole(role)]
      : [];
    const consumes = role === 'worker' || role === 'all';
    return {
      module: AppModule,
      imports: [
        ...common,
        ...api,
        MlModule,
        RealtimeModule.forRole(role),
        SegmentationModule.forRole(role),
        ...(consumes ? [QueueWorkerModule.forRole(role)] : []),
      ],
    };
  }
}
