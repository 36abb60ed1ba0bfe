import { Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { HttpMetricsHook } from './http-metrics.hook';

/** Prometheus registry (global so any module can record its series) and the /api/metrics route. */
@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService, HttpMetricsHook],
  exports: [MetricsService],
})
export class MetricsModule {}
