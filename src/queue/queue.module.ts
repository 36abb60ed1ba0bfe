import { Module } from '@nestjs/common';
import { BullModule } from '@nestjs/bull';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/configuration';
import { RedisFactory } from '../redis/redis.factory';
import { DEAD_LETTER_QUEUE, SEGMENTATION_QUEUE, queuePrefix } from './queue.constants';
import { SegmentationQueue } from './segmentation-queue';

const bullQueue = (name: string) =>
  BullModule.registerQueueAsync({
    name,
    inject: [queueConfig.KEY, RedisFactory],
    useFactory: (cfg: ConfigType<typeof queueConfig>, redis: RedisFactory) => ({
      prefix: queuePrefix(cfg.name),
      settings: {
        lockDuration: cfg.lockDurationMs,
        lockRenewTime: Math.floor(cfg.lockDurationMs / 2),
        stalledInterval: cfg.stalledIntervalMs,
        maxStalledCount: 2,
      },
      // Every Redis client comes from the one factory; Bull's blocking clients must never give up.
      createClient: (type) =>
        redis.create(
          `bull-${name}-${type}`,
          // The command connection batches the commands of one tick into one write (many small writes
          // were the workers' main CPU cost); the blocking and subscriber ones must not pipeline.
          type === 'client' ? { enableAutoPipelining: true } : { maxRetriesPerRequest: null, enableReadyCheck: false },
        ) as never,
    }),
  });

/**
 * The Bull queues on Redis (segmentation and its dead-letter queue) and their producer. Processing
 * lives in QueueWorkerModule, loaded only by `worker` and `all` processes.
 */
@Module({
  imports: [bullQueue(SEGMENTATION_QUEUE), bullQueue(DEAD_LETTER_QUEUE)],
  providers: [SegmentationQueue],
  exports: [SegmentationQueue],
})
export class QueueModule {}
