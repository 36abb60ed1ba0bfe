import { Test, TestingModule } from '@nestjs/testing';
import { AppConfigModule } from '../../../src/config/config.module';
import { MetricsModule } from '../../../src/metrics/metrics.module';
import { RedisModule } from '../../../src/redis/redis.module';
import { MlModule } from '../../../src/ml/ml.module';
import { MetricsService } from '../../../src/metrics/metrics.service';

/**
 * Builds MlModule with real config, metrics and Redis. `env` is applied to process.env before the
 * module is compiled (config is read then) and restored by `close()`.
 */
export async function buildMlModule(
  env: Record<string, string>,
): Promise<{ ref: TestingModule; close: () => Promise<void> }> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const ref = await Test.createTestingModule({
    imports: [AppConfigModule.forRoot(), MetricsModule, RedisModule, MlModule],
  }).compile();
  await ref.init();
  let closed = false;
  return {
    ref,
    close: async () => {
      if (closed) return;
      closed = true;
      await ref.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}

/** Value of a counter/gauge series with the given labels (0 when absent). */
export async function metricValue(
  metric: {
    get(): Promise<{
      values: Array<{ value: number; labels: Record<string, unknown>; metricName?: string }>;
    }>;
  },
  labels: Record<string, string> = {},
  metricName?: string,
): Promise<number> {
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      (metricName === undefined || v.metricName === metricName) &&
      Object.entries(labels).every(([k, val]) => v.labels[k] === val),
  );
  return hit?.value ?? 0;
}

export async function mlRequests(metrics: MetricsService, result: string): Promise<number> {
  return metricValue(metrics.mlRequestsTotal, { result });
}

/** Count of observations in ml_request_duration_seconds. */
export async function mlDurationCount(metrics: MetricsService): Promise<number> {
  return metricValue(metrics.mlRequestDuration, {}, 'ml_request_duration_seconds_count');
}
