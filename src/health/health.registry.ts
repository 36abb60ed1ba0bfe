import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { withTimeout } from '../common/with-timeout';
import {
  HEALTH_CONTRIBUTOR,
  HealthCheckable,
  HealthContributorOptions,
  ServiceCheck,
  ServiceName,
  ServiceStatus,
} from './health-contributor';

export interface ServiceReport extends ServiceCheck {
  service: ServiceName;
  status: ServiceStatus;
  critical: boolean;
  readiness: boolean;
}

const CHECK_TIMEOUT_MS = 1000;

/** Finds every @HealthContributor provider of the application and runs their checks. */
@Injectable()
export class HealthRegistry implements OnApplicationBootstrap {
  private readonly contributors = new Map<ServiceName, { opts: HealthContributorOptions; impl: HealthCheckable }>();

  constructor(private readonly discovery: DiscoveryService) {}

  onApplicationBootstrap(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const { instance, metatype } = wrapper;
      if (!instance || !metatype) continue;
      const opts = Reflect.getMetadata(HEALTH_CONTRIBUTOR, metatype) as HealthContributorOptions | undefined;
      if (opts && typeof (instance as HealthCheckable).check === 'function') {
        this.contributors.set(opts.service, { opts, impl: instance as HealthCheckable });
      }
    }
  }

  has(service: string): service is ServiceName {
    return this.contributors.has(service as ServiceName);
  }

  services(): ServiceName[] {
    return [...this.contributors.keys()];
  }

  async check(service: ServiceName): Promise<ServiceReport> {
    const { opts, impl } = this.contributors.get(service)!;
    let result: ServiceCheck;
    try {
      result = await withTimeout(impl.check(), CHECK_TIMEOUT_MS, `${service} check timed out`);
    } catch (err) {
      result = { up: false, details: { error: (err as Error).message } };
    }
    return {
      service,
      status: result.up ? 'healthy' : 'unhealthy',
      critical: opts.critical,
      readiness: opts.readiness,
      ...result,
    };
  }

  async checkAll(filter: (o: HealthContributorOptions) => boolean = () => true): Promise<ServiceReport[]> {
    const names = [...this.contributors.entries()].filter(([, c]) => filter(c.opts)).map(([n]) => n);
    return Promise.all(names.map((n) => this.check(n)));
  }

  /** unhealthy if a critical service is down, degraded if only non-critical ones are. */
  static overall(reports: ServiceReport[]): ServiceStatus {
    if (reports.some((r) => !r.up && r.critical)) return 'unhealthy';
    if (reports.some((r) => !r.up)) return 'degraded';
    return 'healthy';
  }
}
