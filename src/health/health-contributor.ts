import { SetMetadata } from '@nestjs/common';

/** Names of the services the health routes report (CONTRACT §4). */
export type ServiceName = 'database' | 'redis' | 'queue' | 'ml' | 'storage';
export type ServiceStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface ServiceCheck {
  up: boolean;
  details: Record<string, unknown>;
}

/**
 * A module contributes to health by providing a class decorated with @HealthContributor(...) that
 * implements `check()`. The health module discovers every such provider at start-up, so new modules
 * plug in without editing it.
 *
 * - `critical`: down makes the whole system `unhealthy` (else `degraded`).
 * - `readiness`: also gates /api/health/ready.
 */
export interface HealthContributorOptions {
  service: ServiceName;
  critical: boolean;
  readiness: boolean;
}

export interface HealthCheckable {
  /** Must settle within ~1 s; never throws. */
  check(): Promise<ServiceCheck>;
}

export const HEALTH_CONTRIBUTOR = 'spheroseg:health-contributor';
export const HealthContributor = (opts: HealthContributorOptions) => SetMetadata(HEALTH_CONTRIBUTOR, opts);
