import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import * as keda from '@kubernetes-models/keda/keda.sh/v1alpha1';
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as batch from 'kubernetes-models/batch/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import { validateEnv } from '../../src/config/env.schema';
import { validateSegmenterEnv } from '../../src/segmenter/segmenter.config';
import { REPO_ROOT } from './npm-run';

/**
 * deploy/ is a deployment: every Kubernetes object in it is valid against the Kubernetes and KEDA
 * schemas (offline, kubernetes-models), and the objects fit together — the ML service the ConfigMap
 * names exists, the uploads volume is shared ReadWriteMany, the Secret is documented and complete,
 * the admin account is configured, every pod's environment passes the process's own validation, and
 * the shutdown budget fits the grace period.
 */
type Obj = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [k: string]: unknown };
};
type Container = {
  name: string;
  command?: string[];
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
};
type PodSpec = {
  containers: Container[];
  volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string } }>;
  terminationGracePeriodSeconds?: number;
};
type Workload = Obj & {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
};

const MODELS: Record<string, Record<string, unknown>> = {
  v1: core,
  'apps/v1': apps,
  'batch/v1': batch,
  'policy/v1': policy,
  'autoscaling/v2': autoscalingV2,
  'networking.k8s.io/v1': networking,
  'keda.sh/v1alpha1': keda,
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

/** Every YAML document under deploy/ that is a Kubernetes object (has apiVersion and kind). */
const objects: Array<{ file: string; obj: Obj }> = filesUnder(path.join(REPO_ROOT, 'deploy'))
  .filter((f) => /\.ya?ml$/.test(f))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).flatMap((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      const obj = d.toJS() as Obj | null;
      return obj && obj.apiVersion && obj.kind ? [{ file: path.relative(REPO_ROOT, file), obj }] : [];
    }),
  );
const all = objects.map((o) => o.obj);
const find = <T extends Obj = Obj>(kind: string, name: string) =>
  all.find((o) => o.kind === kind && o.metadata.name === name) as T | undefined;
const deployments = all.filter((o): o is Workload => o.kind === 'Deployment');
const configMap = find<Obj & { data: Record<string, string> }>('ConfigMap', 'spheroseg-config')!;
const secret = find<Obj & { stringData: Record<string, string> }>('Secret', 'spheroseg-secrets')!;

/** What a container's environment holds, with the Secret's placeholders replaced as an operator would. */
function envOf(c: Container, secretValues: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef)
      Object.assign(
        env,
        find<Obj & { data: Record<string, string> }>('ConfigMap', from.configMapRef.name)!.data,
      );
    if (from.secretRef) Object.assign(env, secretValues);
  }
  for (const e of c.env ?? []) env[e.name] = e.value ?? '';
  return env;
}
const FILLED = {
  JWT_SECRET: 'a'.repeat(64),
  ADMIN_PASSWORD: 'a-long-admin-password',
  DATABASE_URL: 'postgresql://spheroseg:pw@postgres:5432/spheroseg',
};

describe('deploy/: Kubernetes objects', () => {
  it('finds the objects of a whole deployment', () => {
    const names = all.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        'ConfigMap/spheroseg-config',
        'Deployment/spheroseg-api',
        'Deployment/spheroseg-worker',
        'Deployment/spheroseg-ml',
        'Service/spheroseg-api',
        'Service/spheroseg-ml',
        'PersistentVolumeClaim/spheroseg-uploads',
        'Secret/spheroseg-secrets',
        'ScaledObject/spheroseg-worker',
      ]),
    );
  });

  it.each(objects.map((o) => [`${o.file}: ${o.obj.kind}/${o.obj.metadata.name}`, o.obj] as const))(
    '%s is valid against its schema',
    (_label, obj) => {
      const models = MODELS[obj.apiVersion];
      expect({ apiVersion: obj.apiVersion, known: Boolean(models) }).toEqual({
        apiVersion: obj.apiVersion,
        known: true,
      });
      const Model = models[obj.kind] as (new (o: unknown) => { validate(): void }) | undefined;
      expect({ kind: obj.kind, known: Boolean(Model) }).toEqual({ kind: obj.kind, known: true });
      expect(() => new Model!(obj).validate()).not.toThrow();
    },
  );

  it('the schema check is real: a wrong type or a missing field is refused', () => {
    const api = structuredClone(find<Workload>('Deployment', 'spheroseg-api')!);
    (api.spec.template.spec.containers[0].ports![0] as { containerPort: unknown }).containerPort = 'http';
    expect(() => new apps.Deployment(api as never).validate()).toThrow(/containerPort/);
    const so = structuredClone(
      find<Obj & { spec: Record<string, unknown> }>('ScaledObject', 'spheroseg-worker')!,
    );
    delete so.spec.scaleTargetRef;
    expect(() => new keda.ScaledObject(so as never).validate()).toThrow(/scaleTargetRef/);
  });
});

describe('deploy/: the objects fit together', () => {
  it('every Service selects a Deployment and targets one of its ports', () => {
    for (const svc of all.filter((o) => o.kind === 'Service') as Array<
      Obj & {
        spec: {
          selector: Record<string, string>;
          ports: Array<{ port: number; targetPort: number | string }>;
        };
      }
    >) {
      const targets = [...deployments, ...(all.filter((o) => o.kind === 'StatefulSet') as Workload[])].filter(
        (d) => Object.entries(svc.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
      );
      expect({ svc: svc.metadata.name, selects: targets.length > 0 }).toEqual({
        svc: svc.metadata.name,
        selects: true,
      });
      for (const port of svc.spec.ports) {
        const containerPorts = targets.flatMap((d) =>
          d.spec.template.spec.containers.flatMap((c) => c.ports ?? []),
        );
        const hit = containerPorts.some(
          (p) =>
            p.containerPort === port.targetPort ||
            p.name === port.targetPort ||
            (port.targetPort === undefined && p.containerPort === port.port),
        );
        expect({ svc: svc.metadata.name, port: port.port, hit }).toEqual({
          svc: svc.metadata.name,
          port: port.port,
          hit: true,
        });
      }
    }
  });

  it('ML_SERVICE_URL names a Service whose pods run the reference segmenter on that port', () => {
    const url = new URL(configMap.data.ML_SERVICE_URL);
    const svc = find<
      Obj & {
        spec: {
          selector: Record<string, string>;
          ports: Array<{ port: number; targetPort: string | number }>;
        };
      }
    >('Service', url.hostname);
    expect(svc).toBeDefined();
    const port = svc!.spec.ports.find((p) => p.port === Number(url.port));
    expect(port).toBeDefined();
    const ml = deployments.find((d) =>
      Object.entries(svc!.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v),
    )!;
    const c = ml.spec.template.spec.containers[0];
    expect(c.command?.join(' ')).toContain('dist/src/segmenter/main.js');
    const env = envOf(c, {});
    const seg = validateSegmenterEnv(env);
    const target = c.ports!.find((p) => p.name === port!.targetPort || p.containerPort === port!.targetPort)!;
    expect(seg.SEGMENTER_PORT).toBe(target.containerPort);
    // It needs nothing of the backend's: no Secret, no database, no Redis.
    expect(c.envFrom ?? []).toEqual([]);
    expect(Object.keys(env).filter((k) => /JWT|DATABASE|REDIS/.test(k))).toEqual([]);
  });

  it('PVC spheroseg-uploads is ReadWriteMany and mounted at UPLOAD_DIR by api, workers and ml', () => {
    const pvc = find<Obj & { spec: { accessModes: string[] } }>(
      'PersistentVolumeClaim',
      'spheroseg-uploads',
    )!;
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    for (const name of ['spheroseg-api', 'spheroseg-worker', 'spheroseg-ml']) {
      const pod = find<Workload>('Deployment', name)!.spec.template.spec;
      const vol = pod.volumes?.find((v) => v.persistentVolumeClaim?.claimName === 'spheroseg-uploads');
      expect({ name, volume: Boolean(vol) }).toEqual({ name, volume: true });
      const c = pod.containers[0];
      const mount = c.volumeMounts?.find((m) => m.name === vol!.name);
      expect({ name, mountPath: mount?.mountPath }).toEqual({ name, mountPath: envOf(c, FILLED).UPLOAD_DIR });
      if (name !== 'spheroseg-ml') expect(mount?.readOnly ?? false).toBe(false);
    }
  });

  it('the Secret is a documented template with JWT_SECRET, ADMIN_PASSWORD and DATABASE_URL, and an unedited copy cannot start', () => {
    const entry = objects.find((o) => o.obj === secret)!;
    expect(entry.file).toMatch(/template/);
    expect(Object.keys(secret.stringData).sort()).toEqual(
      expect.arrayContaining(['ADMIN_PASSWORD', 'DATABASE_URL', 'JWT_SECRET']),
    );
    expect(readFileSync(path.join(REPO_ROOT, entry.file), 'utf8')).toMatch(/kubectl (apply|create secret)/);
    const api = find<Workload>('Deployment', 'spheroseg-api')!.spec.template.spec.containers[0];
    expect(() => validateEnv(envOf(api, secret.stringData))).toThrow(/Invalid configuration/);
    // Nothing secret in the ConfigMap.
    expect(Object.keys(configMap.data).filter((k) => /SECRET|PASSWORD|DATABASE_URL/.test(k))).toEqual([]);
  });

  it.each(['spheroseg-api', 'spheroseg-worker'])(
    '%s: its environment (ConfigMap + filled Secret) passes the backend validation, with the admin account configured',
    (name) => {
      const c = find<Workload>('Deployment', name)!.spec.template.spec.containers[0];
      expect(c.envFrom?.map((f) => f.configMapRef?.name ?? f.secretRef?.name).sort()).toEqual([
        'spheroseg-config',
        'spheroseg-secrets',
      ]);
      const env = validateEnv(envOf(c, FILLED));
      expect(env.NODE_ENV).toBe('production');
      expect(env.APP_ROLE).toBe(name.replace('spheroseg-', ''));
      expect(env.ADMIN_EMAIL).toBeTruthy();
      expect(env.ADMIN_PASSWORD).toBe(FILLED.ADMIN_PASSWORD);
    },
  );

  it.each(['spheroseg-api', 'spheroseg-worker', 'spheroseg-ml'])(
    '%s: preStop + SHUTDOWN_TIMEOUT fit in terminationGracePeriodSeconds, and the comments say the same value',
    (name) => {
      const pod = find<Workload>('Deployment', name)!.spec.template.spec;
      const c = pod.containers[0];
      const timeoutMs = Number(envOf(c, FILLED).SHUTDOWN_TIMEOUT);
      const preStop = c.lifecycle?.preStop?.exec?.command;
      const preStopS = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0;
      expect(preStopS * 1000 + timeoutMs + 2000).toBeLessThanOrEqual(
        pod.terminationGracePeriodSeconds! * 1000,
      );
      // Every "SHUTDOWN_TIMEOUT (N s)" in deploy/k8s states the value actually set.
      for (const file of filesUnder(path.join(REPO_ROOT, 'deploy/k8s'))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/SHUTDOWN_TIMEOUT \((\d+) s\)/g)) {
          expect({ file: path.basename(file), seconds: Number(m[1]) }).toEqual({
            file: path.basename(file),
            seconds: timeoutMs / 1000,
          });
        }
      }
    },
  );

  it('every ConfigMap, Secret and PVC a pod refers to exists; the ScaledObject targets the worker Deployment', () => {
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      for (const c of pod.containers)
        for (const f of c.envFrom ?? []) {
          if (f.configMapRef) expect(find('ConfigMap', f.configMapRef.name)).toBeDefined();
          if (f.secretRef) expect(find('Secret', f.secretRef.name)).toBeDefined();
        }
      for (const v of pod.volumes ?? [])
        if (v.persistentVolumeClaim)
          expect(find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName)).toBeDefined();
      expect(d.spec.selector.matchLabels).toEqual(expect.objectContaining({}));
      for (const [k, v] of Object.entries(d.spec.selector.matchLabels))
        expect(d.spec.template.metadata.labels[k]).toBe(v);
    }
    const so = find<Obj & { spec: { scaleTargetRef: { name: string } } }>(
      'ScaledObject',
      'spheroseg-worker',
    )!;
    expect(
      find<Workload>('Deployment', so.spec.scaleTargetRef.name)?.spec.template.metadata.labels.role,
    ).toBe('worker');
  });
});
