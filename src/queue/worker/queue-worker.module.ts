import { Module } from '@nestjs/common';
import { MlModule } from '../../ml/ml.module';
import { SegmentationModule } from '../../segmentation/segmentation.module';
import { QueueModule } from '../queue.module';
import { SegmentationWorker } from './segmentation.worker';

/** Queue consumption; imported only by `worker` and `all` processes (an `api` process never processes). */
@Module({
  imports: [QueueModule, MlModule, SegmentationModule.forRole('worker')],
  providers: [SegmentationWorker],
})
export class QueueWorkerModule {}
