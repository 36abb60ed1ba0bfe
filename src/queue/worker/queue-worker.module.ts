import { DynamicModule, Module } from '@nestjs/common';
import type { AppRole } from '../../config/app-role';
import { MlModule } from '../../ml/ml.module';
import { SegmentationModule } from '../../segmentation/segmentation.module';
import { QueueModule } from '../queue.module';
import { RealtimeModule } from '../../realtime/realtime.module';
import { SegmentationWorker } from './segmentation.worker';

/** Queue consumption; imported only by `worker` and `all` processes (an `api` process never processes). */
@Module({})
export class QueueWorkerModule {
  static forRole(role: AppRole): DynamicModule {
    return {
      module: QueueWorkerModule,
      // Same dynamic module as the app's, so Nest shares one instance of the segmentation providers.
      imports: [QueueModule, MlModule, RealtimeModule.forRole(role), SegmentationModule.forRole(role)],
      providers: [SegmentationWorker],
    };
  }
}
