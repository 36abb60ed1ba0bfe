import { Module } from '@nestjs/common';
import { ConfigModule, type ConfigType } from '@nestjs/config';
import { availableParallelism } from 'node:os';
import { segmenterConfig, validateSegmenterEnv } from './segmenter.config';
import { SegmenterController } from './segmenter.controller';
import { SegmenterPool } from './segmenter-pool';

/**
 * The reference segmentation service (CONTRACT §8): its own application, started by
 * `src/segmenter/main.ts`, with its own configuration (`segmenter.config.ts`), none of the backend's.
 */
@Module({
  imports: [
    ConfigModule.forRoot({
      isGlobal: true,
      ignoreEnvFile: true,
      cache: true,
      load: [segmenterConfig],
      validate: (raw: Record<string, unknown>) => validateSegmenterEnv(raw),
    }),
  ],
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
