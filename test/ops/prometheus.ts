import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { freeLoopbackPort } from '../support/pg-instance';
import { REPO_ROOT, sleep } from './npm-run';

/**
 * Debian's `prometheus` scraping real processes: the scrape job of `deploy/prometheus/prometheus.yml`
 * (its job name and metrics path), with static targets instead of Kubernetes discovery, labelled
 * `role` and `pod` as that file's relabelling labels pods. Loopback only; scraped every second.
 */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

export interface ScrapeTarget {
  url: string;
  role: string;
  pod: string;
}

export interface PromVector {
  metric: Record<string, string>;
  value: [number, string];
}

export class Prometheus {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly logs: () => string,
  ) {}

  static async start(targets: ScrapeTarget[]): Promise<Prometheus> {
    const deployed = parse(
      readFileSync(path.join(REPO_ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'),
    ) as {
      scrape_configs: Array<Record<string, unknown>>;
    };
    const job = deployed.scrape_configs.find((j) => j.job_name === 'spheroseg');
    if (!job) throw new Error('deploy/prometheus/prometheus.yml has no spheroseg job');
    const { kubernetes_sd_configs: _sd, relabel_configs: _relabel, ...rest } = job;
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      scrape_configs: [
        {
          ...rest,
          static_configs: targets.map((t) => ({
            targets: [new URL(t.url).host],
            labels: { role: t.role, pod: t.pod },
          })),
        },
      ],
    };
    const dir = mkdtempSync(path.join(tmpdir(), 'spheroseg-prom-'));
    const file = path.join(dir, 'prometheus.yml');
    writeFileSync(file, JSON.stringify(config)); // JSON is YAML
    const port = await freeLoopbackPort();
    const child = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let logs = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (logs += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (logs += c));
    const prom = new Prometheus(`http://127.0.0.1:${port}`, child, dir, () => logs);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${logs}`);
      try {
        if ((await fetch(`${prom.url}/-/ready`, { signal: AbortSignal.timeout(1000) })).status === 200)
          return prom;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`prometheus not ready: ${logs}`);
      await sleep(200);
    }
  }

  /** Instant query through the HTTP API; throws with Prometheus's error on failure. */
  async query(expr: string): Promise<PromVector[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`, {
      signal: AbortSignal.timeout(5000),
    });
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: PromVector[] };
    };
    if (res.status !== 200 || body.status !== 'success')
      throw new Error(`query ${expr} failed: ${res.status} ${body.error}`);
    if (body.data!.resultType !== 'vector')
      throw new Error(`query ${expr}: ${body.data!.resultType}, not a vector`);
    return body.data!.result;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every PromQL expression of the Grafana dashboard, with its panel title. */
export function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const dash = JSON.parse(
    readFileSync(path.join(REPO_ROOT, 'deploy/grafana/spheroseg-dashboard.json'), 'utf8'),
  ) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
  };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

/** The PromQL of every KEDA prometheus trigger in deploy/k8s. */
export function kedaQueries(docs: Array<Record<string, unknown>>): string[] {
  return docs
    .filter((d) => d.kind === 'ScaledObject')
    .flatMap(
      (d) => (d.spec as { triggers: Array<{ type: string; metadata: { query?: string } }> }).triggers ?? [],
    )
    .filter((t) => t.type === 'prometheus')
    .map((t) => t.metadata.query!);
}
