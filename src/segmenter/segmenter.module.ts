import { Module } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { availableParallelism } from 'node:os';
import { AppConfigModule } from '../config/config.module';
import { segmenterConfig } from '../config/configuration';
import { SegmenterController } from './segmenter.controller';
import { SegmenterPool } from './segmenter-pool';

/** The reference segmentation service (CONTRACT §8): its own application, started by `src/segmenter/main.ts`. */
@Module({
  imports: [AppConfigModule.forRoot()],
  controllers: [SegmenterController],
  providers: [
    {
      provide: SegmenterPool,
      inject: [segmenterConfig.KEY],
      useFactory: (config: ConfigType<typeof segmenterConfig>) =>
        new SegmenterPool({ threads: config.threads > 0 ? config.threads : availableParallelism() }),
    },
  ],
})
export class SegmenterModule {}
