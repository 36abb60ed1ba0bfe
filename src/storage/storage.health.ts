import { Injectable } from '@nestjs/common';
import { HealthCheckable, HealthContributor, ServiceCheck } from '../health/health-contributor';
import { ObjectStore } from './object-store';

/**
 * `storage` health (CONTRACT §4, §9): reported with STORAGE_DRIVER=s3 only (the bucket answers a HEAD
 * within 900 ms). Not critical and not part of readiness: a store that is down makes the system
 * `degraded`; uploads and file routes answer 503 meanwhile.
 */
@Injectable()
@HealthContributor({ service: 'storage', critical: false, readiness: false })
export class StorageHealthIndicator implements HealthCheckable {
  constructor(private readonly store: ObjectStore) {}

  check(): Promise<ServiceCheck> {
    return this.store.check();
  }
}
