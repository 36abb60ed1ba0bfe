import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './npm-run';

export const K8S_DIR = path.join(REPO_ROOT, 'deploy/k8s');

export interface Manifest {
  file: string;
  doc: Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };
}

/** Every object of every YAML file in deploy/k8s (multi-document files included); YAML errors throw. */
export function loadManifests(): Manifest[] {
  return readdirSync(K8S_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(K8S_DIR, file), 'utf8')).flatMap((d) => {
        if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
        const doc = d.toJS() as Manifest['doc'] | null;
        return doc ? [{ file, doc }] : [];
      }),
    );
}
