import { Module } from '@nestjs/common';
import { BullModule, getQueueToken } from '@nestjs/bull';
import type { ConfigType } from '@nestjs/config';
import { queueConfig } from '../config/configuration';
import { RedisFactory } from '../redis/redis.factory';
import { DEAD_LETTER_QUEUE, PRIORITY_BANDS, bandQueueName, queuePrefix } from './queue.constants';
import { BAND_QUEUES, SegmentationQueue } from './segmentation-queue';

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
      // Every Redis client comes from the one factory. The queues of one process share their command
      // connection (auto-pipelined: the commands of one tick go out in one write, and the worker's
      // cross-band fetch runs on it) and their subscriber; Bull's blocking connection is never used
      // by the band consumer, but it must never give up if something opens it.
      createClient: (type) =>
        (type === 'client'
          ? redis.commands()
          : type === 'subscriber'
            ? redis.shared('bull-subscriber', { maxRetriesPerRequest: null, enableReadyCheck: false })
            : redis.create(`bull-${name}-${type}`, { maxRetriesPerRequest: null, enableReadyCheck: false })) as never,
    }),
  });

/**
 * The Bull queues on Redis — one per priority band, and the dead-letter queue — and their producer.
 * Processing lives in QueueWorkerModule, loaded only by `worker` and `all` processes.
 */
@Module({
  imports: [...PRIORITY_BANDS.map((b) => bullQueue(bandQueueName(b))), bullQueue(DEAD_LETTER_QUEUE)],
  providers: [
    {
      provide: BAND_QUEUES,
      inject: PRIORITY_BANDS.map((b) => getQueueToken(bandQueueName(b))),
      useFactory: (...queues: unknown[]) => queues,
    },
    SegmentationQueue,
  ],
  exports: [SegmentationQueue],
})
export class QueueModule {}
