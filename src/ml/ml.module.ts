import { Module } from '@nestjs/common';
import { ML_STATUS_READER } from '../common/contracts';
import { MlHttpClient } from './ml-http.client';
import { MlService } from './ml.service';
import { MlStatusService } from './ml-status.service';
import { MlHealthIndicator } from './ml.health';

/**
 * ML service access (CONTRACT §8) behind a circuit breaker, cross-process ML status, and `ml` health.
 * Needs the global config, MetricsModule and RedisModule. Opens no connection to the ML service at
 * start; `api` processes (queue enabled) only read the status that workers publish to Redis.
 */
@Module({
  providers: [
    MlHttpClient,
    MlService,
    MlStatusService,
    { provide: ML_STATUS_READER, useExisting: MlStatusService },
    MlHealthIndicator,
  ],
  exports: [MlService, MlStatusService, ML_STATUS_READER, MlHealthIndicator],
})
export class MlModule {}
