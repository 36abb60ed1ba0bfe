import { Global, Module } from '@nestjs/common';
import { RedisFactory } from './redis.factory';

@Global()
@Module({ providers: [RedisFactory], exports: [RedisFactory] })
export class RedisModule {}
