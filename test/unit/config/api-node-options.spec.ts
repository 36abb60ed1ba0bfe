import { readFileSync } from 'node:fs';
import path from 'node:path';
import { API_NODE_OPTIONS } from '../../../bench/common/harness';

/**
 * The api's V8 heap settings are a deployment setting (README "Memory"): what users run (the image,
 * `npm run start:prod`, the k8s api manifest) and what the benches run must be the same flags, and
 * the processes that are not the api (worker, ml) must not inherit them from the image.
 */
describe('api NODE_OPTIONS', () => {
  const read = (p: string) => readFileSync(path.join(__dirname, '../../..', p), 'utf8');

  it('is the same in the Dockerfile, start:prod, the k8s api manifest and the bench harness', () => {
    expect(API_NODE_OPTIONS).toMatch(/--max-old-space-size=\d+/);
    expect(read('Dockerfile')).toContain(`ENV NODE_OPTIONS="${API_NODE_OPTIONS}"`);
    const startProd = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts['start:prod'];
    expect(startProd).toContain(`NODE_OPTIONS="\${NODE_OPTIONS-${API_NODE_OPTIONS}}"`);
    expect(read('deploy/k8s/api.yaml')).toContain(`{ name: NODE_OPTIONS, value: "${API_NODE_OPTIONS}" }`);
  });

  it('is overridden for the worker and the segmenter', () => {
    for (const f of ['deploy/k8s/worker.yaml', 'deploy/k8s/ml.yaml']) expect(read(f)).toContain('{ name: NODE_OPTIONS, value: "" }');
    const compose = read('docker-compose.yml');
    expect(compose.match(/NODE_OPTIONS: ""/g)).toHaveLength(2);
  });
});
