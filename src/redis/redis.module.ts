import { Global, Module } from '@nestjs/common';
import { RedisFactory } from './redis.factory';
import { RedisHealthIndicator } from './redis.health';

@Global()
@Module({ providers: [RedisFactory, RedisHealthIndicator], exports: [RedisFactory] })
export class RedisModule {}
