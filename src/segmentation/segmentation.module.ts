import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AppRole } from '../config/app-role';
import { ImagesModule } from '../images/images.module';
import { MlModule } from '../ml/ml.module';
import { QueueModule } from '../queue/queue.module';
import { RealtimeModule } from '../realtime/realtime.module';
import { QueueMetricsService } from './queue-metrics.service';
import { ResultEntity } from './result.entity';
import { QueueAdminController, SegmentationController } from './segmentation.controller';
import { SegmentationService } from './segmentation.service';
import { TaskEntity } from './task.entity';
import { TaskRunner } from './task-runner';
import { TaskStore } from './task.store';
import { Reconciler } from './reconciler';
import { ResultVersionsController } from './result-versions.controller';
import { ResultVersionsService } from './result-versions.service';
import { ResultVersionStore } from './result-versions.store';

/**
 * Task lifecycle. Serving roles get the REST routes and the enqueue side; every role gets the store,
 * the queue metrics/health and the runner the worker uses.
 */
@Module({})
export class SegmentationModule {
  private static readonly byRole = new Map<AppRole, DynamicModule>();

  /** One dynamic module per role, so every importer shares the same providers. */
  static forRole(role: AppRole): DynamicModule {
    let mod = SegmentationModule.byRole.get(role);
    if (!mod) SegmentationModule.byRole.set(role, (mod = SegmentationModule.build(role)));
    return mod;
  }

  private static build(role: AppRole): DynamicModule {
    const serves = role !== 'worker';
    return {
      module: SegmentationModule,
      imports: [
        TypeOrmModule.forFeature([TaskEntity, ResultEntity]),
        QueueModule,
        MlModule,
        RealtimeModule.forRole(role),
        ...(serves ? [ImagesModule] : []),
      ],
      controllers: serves ? [SegmentationController, ResultVersionsController, QueueAdminController] : [],
      providers: [
        TaskStore,
        TaskRunner,
        QueueMetricsService,
        Reconciler,
        ...(serves ? [SegmentationService, ResultVersionStore, ResultVersionsService] : []),
      ],
      exports: [TaskStore, TaskRunner, QueueMetricsService, Reconciler],
    };
  }
}
