import { Injectable } from '@nestjs/common';
import { withTimeout } from '../common/with-timeout';
import { HealthCheckable, HealthContributor, ServiceCheck } from '../health/health-contributor';
import { MlStatusService } from './ml-status.service';

/**
 * `ml` health (CONTRACT §4): up when the circuit is not open (locally, or as workers report it in the
 * `api` role). Not critical and not part of readiness: a down ML service makes the system `degraded`
 * and jobs wait in the queue. Probes nothing itself: it reads the breaker's state.
 */
@Injectable()
@HealthContributor({ service: 'ml', critical: false, readiness: false })
export class MlHealthIndicator implements HealthCheckable {
  constructor(private readonly status: MlStatusService) {}

  async check(timeoutMs = 900): Promise<ServiceCheck> {
    try {
      const s = await withTimeout(this.status.snapshot(), timeoutMs, 'ml status did not answer in time');
      return { up: s.available, details: { circuit: s.state, stats: s.stats } };
    } catch {
      return {
        up: false,
        details: {
          circuit: 'open',
          stats: { successes: 0, failures: 0, timeouts: 0, rejects: 0, latencyMeanMs: 0 },
          error: 'ml status unavailable',
        },
      };
    }
  }
}
