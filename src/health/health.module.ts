import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller';
import { HealthRegistry } from './health.registry';
import { EventLoopLag } from './event-loop-lag';

/**
 * Health routes over every @HealthContributor the application provides (database, redis, queue, ml):
 * modules plug their indicator in by providing it, without editing this module.
 */
@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'json', logger: false }), DiscoveryModule],
  controllers: [HealthController],
  providers: [HealthRegistry, EventLoopLag],
})
export class HealthModule {}
