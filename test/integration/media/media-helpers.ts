import type { MlPolygon, MlSegmentResults } from '../../../src/common/contracts';
import { startTestApp, TestApp } from '../../support/app';
import { MlStub } from '../../support/ml-stub';
import type { S3TestServer } from '../../support/s3-server';
import { StorageDriverName, storageFor, StorageUnderTest } from '../../support/storage-drivers';

export { filesUnder } from '../../support/storage-drivers';

export interface MediaEnv {
  t: TestApp;
  stub: MlStub;
  /** The app's storage (its own UPLOAD_DIR, or its own bucket with `s3`). */
  storage: StorageUnderTest;
  uploadDir: string;
  /** Stops the app and the stub and removes the storage. */
  stop(): Promise<void>;
}

/**
 * The app with synchronous segmentation (ENABLE_QUEUE=false) against an ML stub, with storage of its
 * own under `driver` (with `s3`, a bucket on `s3`, the suite's server).
 */
export async function startMediaApp(
  tag: string,
  env: Record<string, string> = {},
  driver: StorageDriverName = 'local',
  s3?: S3TestServer,
): Promise<MediaEnv> {
  const stub = new MlStub();
  await stub.start();
  const storage = storageFor(driver, tag, s3);
  const t = await startTestApp({
    QUEUE_NAME: `${process.env.QUEUE_NAME}_${tag}_${driver}`,
    ENABLE_QUEUE: 'false',
    ML_SERVICE_URL: stub.url,
    ...storage.env,
    ...env,
  });
  return {
    t,
    stub,
    storage,
    uploadDir: storage.uploadDir,
    stop: async () => {
      await t.close();
      await stub.stop();
      storage.cleanup();
    },
  };
}

/** An ML polygon with features derived from its points (area by the shoelace formula). */
export function polygon(
  id: number,
  type: 'external' | 'internal',
  points: [number, number][],
  parentId: number | null = null,
  extra: Partial<MlPolygon['features']> = {},
): MlPolygon {
  let a = 0;
  let per = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i];
    const [x2, y2] = points[(i + 1) % points.length];
    a += x1 * y2 - x2 * y1;
    per += Math.hypot(x2 - x1, y2 - y1);
  }
  const area = Math.abs(a) / 2;
  const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
  const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
  return {
    id,
    type,
    parent_id: parentId,
    points,
    class: 'spheroid',
    confidence: 0.5 + id / 100,
    features: {
      area,
      perimeter: per,
      circularity: (4 * Math.PI * area) / (per * per),
      solidity: 0.9 + id / 1000,
      eccentricity: 0.1 * id,
      major_axis: 10 + id,
      minor_axis: 5 + id,
      orientation: -12.5 + id,
      centroid_x: cx,
      centroid_y: cy,
      ...extra,
    },
  };
}

/** A regular n-gon. */
export function ngon(cx: number, cy: number, r: number, n = 24, phase = 0): [number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const a = phase + (2 * Math.PI * i) / n;
    return [Math.round((cx + r * Math.cos(a)) * 100) / 100, Math.round((cy + r * Math.sin(a)) * 100) / 100] as [
      number,
      number,
    ];
  });
}

export const results = (width: number, height: number, polygons: MlPolygon[]): MlSegmentResults => ({
  image_width: width,
  image_height: height,
  processing_time_ms: 7,
  polygons,
});

/** Segments an image synchronously with the given ML answer; returns the task id. */
export async function segmentWith(env: MediaEnv, token: string, imageId: number, res: MlSegmentResults): Promise<string> {
  env.stub.enqueue({ body: { success: true, results: res } });
  const r = await env.t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token });
  if (r.status !== 200) throw new Error(`segmentation failed: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { taskId: string }).taskId;
}

/** Uploads; returns the whole `image` body. */
export async function uploadBody(
  t: TestApp,
  token: string,
  data: Buffer,
  name: string,
): Promise<{ id: number; urls: { file: string; thumbnail: string; overlay: string | null } } & Record<string, unknown>> {
  const form = new FormData();
  form.append('file', new Blob([data]), name);
  const res = await t.request('/api/images', { method: 'POST', body: form, token });
  if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  return res.json();
}
