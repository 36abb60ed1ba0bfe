import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { KeyedHistogram } from './keyed-histogram';

/**
 * Owns the Prometheus registry and every series of CONTRACT §5. Other modules inject this service
 * and update the series they own; nothing else creates metrics.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  /** Labels method, route, status (see HttpMetricsHook). */
  readonly httpRequestDuration = new KeyedHistogram(
    'http_request_duration_seconds',
    'HTTP request duration by method, route and status',
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    this.registry,
  );

  readonly queueJobs = new Gauge({
    name: 'segmentation_queue_jobs',
    help: 'Jobs in the segmentation queue by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly jobDuration = new Histogram({
    name: 'segmentation_job_duration_seconds',
    help: 'Time from a job starting to finishing',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  readonly jobWait = new Histogram({
    name: 'segmentation_job_wait_seconds',
    help: 'Time a job waited in the queue before a worker took it',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
    registers: [this.registry],
  });

  /** The worker's share of the ML answer → `segmentation:completed` latency (CONTRACT §6 events). */
  readonly completionPublish = new Histogram({
    name: 'segmentation_completion_publish_seconds',
    help: 'Time from the ML answer reaching the worker to its completed event being published (result written first)',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1],
    registers: [this.registry],
  });

  readonly jobsTotal = new Counter({
    name: 'segmentation_jobs_total',
    help: 'Finished job attempts by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly mlCircuitState = new Gauge({
    name: 'ml_circuit_state',
    help: 'ML circuit breaker state: 0 closed, 1 half-open, 2 open',
    registers: [this.registry],
  });

  readonly mlRequestsTotal = new Counter({
    name: 'ml_requests_total',
    help: 'ML service calls by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly mlRequestDuration = new Histogram({
    name: 'ml_request_duration_seconds',
    help: 'ML service call duration',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly dbPoolConnections = new Gauge({
    name: 'db_pool_connections',
    help: 'PostgreSQL pool connections by state (total, idle, waiting)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly dbPoolAcquire = new Histogram({
    name: 'db_pool_acquire_seconds',
    help: 'Wait for a free PostgreSQL connection',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5],
    registers: [this.registry],
  });

  readonly dbQueryDuration = new Histogram({
    name: 'db_query_duration_seconds',
    help: 'PostgreSQL query duration',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly dbSlowQueries = new Counter({
    name: 'db_slow_queries_total',
    help: 'Queries slower than DATABASE_SLOW_QUERY_MS',
    registers: [this.registry],
  });

  private readonly collectors: Array<() => Promise<void> | void> = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Modules register a callback that refreshes their gauges just before a scrape. */
  onCollect(fn: () => Promise<void> | void): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    await Promise.allSettled(this.collectors.map((fn) => fn()));
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
