import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { MlPolygon, MlSegmentResults } from '../../src/common/contracts';
import { greyPng } from '../fixtures/image-files';
import { generateSynthetic } from '../fixtures/synthetic';
import { freeLoopbackPort } from '../support/pg-instance';
import { type RunningService, ensureBuilt, spawnService, waitHealthy } from './service-process';

const SAMPLE = path.resolve(__dirname, '../../../shared/samples/test_spheroid.png');
const FEATURE_KEYS = [
  'area',
  'centroid_x',
  'centroid_y',
  'circularity',
  'eccentricity',
  'major_axis',
  'minor_axis',
  'orientation',
  'perimeter',
  'solidity',
];

let uploads: string;
let outside: string;
let service: RunningService;

const post = async (body: string, contentType = 'application/json') => {
  const res = await fetch(`${service.url}/segment`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const segment = (imagePath: unknown, taskId: unknown = 'task-1') =>
  post(JSON.stringify({ image_path: imagePath, task_id: taskId }));
const health = async () => {
  const res = await fetch(`${service.url}/health`);
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  ensureBuilt();
  uploads = await mkdtemp(path.join(tmpdir(), 'segmenter-uploads-'));
  outside = await mkdtemp(path.join(tmpdir(), 'segmenter-outside-'));
  const scene = generateSynthetic(42, { spheroids: 3, touchingPair: true });
  await mkdir(path.join(uploads, 'images'));
  await writeFile(
    path.join(uploads, 'images/scene.png'),
    await greyPng({ width: scene.width, height: scene.height, data: scene.grey }),
  );
  await copyFile(SAMPLE, path.join(uploads, 'images/sample.png'));
  await writeFile(path.join(uploads, 'images/notes.png'), 'this is text, not a PNG');
  const png = await greyPng({ width: 64, height: 64, data: new Uint8Array(64 * 64).fill(200) });
  await writeFile(path.join(uploads, 'images/truncated.png'), png.subarray(0, png.length - 20));
  await copyFile(SAMPLE, path.join(outside, 'secret.png'));
  await symlink(path.join(outside, 'secret.png'), path.join(uploads, 'images/escape.png'));
  await symlink(outside, path.join(uploads, 'elsewhere'));
  await symlink('scene.png', path.join(uploads, 'images/alias.png'));

  const port = String(await freeLoopbackPort());
  service = spawnService({ UPLOAD_DIR: uploads, SEGMENTER_PORT: port, SEGMENTER_THREADS: '2' });
  await waitHealthy(service);
}, 180_000);

afterAll(async () => {
  if (service?.child.exitCode === null) {
    service.child.kill('SIGKILL');
    await service.exited;
  }
  await rm(uploads, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe('GET /health', () => {
  it('is healthy with the model loaded', async () => {
    expect(await health()).toEqual({ status: 200, body: { status: 'healthy', model_loaded: true } });
  });
});

describe('POST /segment', () => {
  it('answers a good image with polygons in the exact wire shape', async () => {
    const { status, body } = await segment('images/scene.png', 'task-wire');
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['results', 'success']);
    expect(body.success).toBe(true);
    const results = body.results as MlSegmentResults;
    expect(Object.keys(results).sort()).toEqual([
      'image_height',
      'image_width',
      'polygons',
      'processing_time_ms',
    ]);
    expect(results).toMatchObject({ image_width: 1000, image_height: 1000 });
    expect(Number.isInteger(results.processing_time_ms) && results.processing_time_ms >= 0).toBe(true);
    expect(results.polygons.filter((p) => p.type === 'external')).toHaveLength(3);
    results.polygons.forEach((p, index) => expectWirePolygon(p, index + 1, results));
  });

  it('follows a symlink that stays inside the upload directory', async () => {
    const { status, body } = await segment('images/alias.png');
    expect(status).toBe(200);
    expect(body.success).toBe(true);
  });

  it('finds exactly the two touching spheroids of the real sample', async () => {
    const { status, body } = await segment('images/sample.png');
    expect(status).toBe(200);
    const polygons = (body.results as MlSegmentResults).polygons;
    expect(polygons.filter((p) => p.type === 'external' && p.class === 'spheroid')).toHaveLength(2);
  });

  it('segments several images at once and still answers /health meanwhile', async () => {
    const batch = Array.from({ length: 4 }, () => segment('images/scene.png'));
    const probe = await health();
    const answers = await Promise.all(batch);
    expect(probe.status).toBe(200);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
  });

  describe.each([
    ['a ".." segment', () => segment('../secret.png'), 400],
    ['a ".." segment inside the path', () => segment('images/../../secret.png'), 400],
    ['an absolute path', () => segment(path.join(uploads, 'images/scene.png')), 400],
    ['a symlink to a file outside', () => segment('images/escape.png'), 400],
    ['a symlinked directory leading outside', () => segment('elsewhere/secret.png'), 400],
    ['a missing file', () => segment('images/missing.png'), 404],
    ['a directory', () => segment('images'), 400],
    ['a file that is not an image', () => segment('images/notes.png'), 400],
    ['a truncated image', () => segment('images/truncated.png'), 400],
    ['a body without image_path', () => post(JSON.stringify({ task_id: 't' })), 400],
    ['a body without task_id', () => post(JSON.stringify({ image_path: 'images/scene.png' })), 400],
    ['a numeric image_path', () => segment(5), 400],
    ['an empty image_path', () => segment(''), 400],
    ['a body that is an array', () => post('[]'), 400],
    ['malformed JSON', () => post('{"image_path": '), 400],
    ['a non-JSON body', () => post('image_path=x', 'text/plain'), 400],
  ])('with %s', (_label, send, expected) => {
    it(`answers ${expected} { success: false, error } without server paths, and stays healthy`, async () => {
      const { status, body } = await send();
      expect(status).toBe(expected);
      expect(Object.keys(body).sort()).toEqual(['error', 'success']);
      expect(body.success).toBe(false);
      expect(typeof body.error).toBe('string');
      for (const secret of [uploads, outside, tmpdir(), path.resolve(__dirname, '../..')]) {
        expect(body.error).not.toContain(secret);
      }
      expect((await health()).status).toBe(200);
    });
  });

  it('answers unknown routes with 404 { success: false, error }', async () => {
    const res = await fetch(`${service.url}/nowhere`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ success: false, error: expect.any(String) });
  });
});

describe('process', () => {
  it('refuses an invalid configuration with one line naming the variable, exit 1', async () => {
    const bad = spawnService({ UPLOAD_DIR: uploads, SEGMENTER_PORT: 'not-a-port' });
    expect(await bad.exited).toBe(1);
    const lines = bad.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('SEGMENTER_PORT');
  });

  it('stops on SIGTERM with exit code 0', async () => {
    service.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 15_000)));
    const code = await Promise.race([service.exited, timeout]);
    clearTimeout(timer);
    expect(code).toBe(0);
  });
});

function expectWirePolygon(p: MlPolygon, expectedId: number, results: MlSegmentResults): void {
  expect(Object.keys(p).sort()).toEqual([
    'class',
    'confidence',
    'features',
    'id',
    'parent_id',
    'points',
    'type',
  ]);
  expect(p.id).toBe(expectedId);
  expect(p.class).toBe('spheroid');
  expect(p.confidence).toBeGreaterThanOrEqual(0);
  expect(p.confidence).toBeLessThanOrEqual(1);
  if (p.type === 'external') {
    expect(p.parent_id).toBeNull();
  } else {
    expect(p.type).toBe('internal');
    const parent = results.polygons.find((q) => q.id === p.parent_id);
    expect(parent?.type).toBe('external');
  }
  expect(p.points.length).toBeGreaterThanOrEqual(3);
  for (const [x, y] of p.points) {
    expect(Number.isInteger(x) && Number.isInteger(y)).toBe(true);
    expect(x >= 0 && x < results.image_width && y >= 0 && y < results.image_height).toBe(true);
  }
  expect(Object.keys(p.features).sort()).toEqual(FEATURE_KEYS);
  for (const value of Object.values(p.features)) expect(Number.isFinite(value)).toBe(true);
  expect(p.features.area).toBeGreaterThan(0);
  expect(p.features.circularity).toBeGreaterThan(0);
  expect(p.features.solidity).toBeLessThanOrEqual(1);
}
