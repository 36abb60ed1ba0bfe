import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { ObjectStore } from '../../../src/storage/object-store';
import { StorageSweeper } from '../../../src/storage/storage-sweeper';
import { S3ObjectStore } from '../../../src/storage/s3-object-store';
import { makeImage } from '../../unit/images/image-fixtures';
import { S3TestServer } from '../../support/s3-server';
import { storageFor } from '../../support/storage-drivers';
import { MediaEnv, startMediaApp, uploadBody } from '../media/media-helpers';
import { noisePng, uploadFile } from '../../support/big-upload';
import { ownDatabase } from '../../support/own-database';

const imageRows = async (db: DataSource): Promise<number> =>
  ((await db.query('SELECT count(*)::int AS n FROM images')) as Array<{ n: number }>)[0].n;

describe('STORAGE_DRIVER=s3 when the store fails (CONTRACT §9)', () => {
  let s3: S3TestServer;
  let env: MediaEnv;
  let token: string;
  let db: DataSource;
  let dir: string;
  // A database of its own: the sweep test checks that no entry of the journal (`storage_sweep`) is left
  // due, and in the run's shared database the s3 suites running beside this one keep adding entries
  // that fall due (every upload's, PENDING_DUE_MS after it), between the sweep and the check.
  const ownDb = ownDatabase('s3_faults');
  const health = async () =>
    (await fetch(`${env.t.url}/api/health`)).json() as Promise<{
      status: string;
      services: Record<string, string>;
    }>;
  const upload = (data: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([data]), 'x.png');
    return env.t.request('/api/images', { method: 'POST', body: form, token });
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 's3-faults-'));
    s3 = await new S3TestServer().start();
    env = await startMediaApp('s3-faults', { DATABASE_URL: await ownDb.create() }, 's3', s3);
    ({ token } = await env.t.register());
    db = env.t.app.get(DataSource);
  });
  afterEach(() => {
    s3.mode = 'pass';
  });
  afterAll(async () => {
    await env?.stop();
    await s3?.stop();
    await ownDb.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an outage in the middle of an upload (server killed): 503, no row, and no object after the sweep', async () => {
    const file = await noisePng(dir, 16);
    const rows = await imageRows(db);
    const keys = await env.storage.files();
    const midway = s3.whenUploaded(4 * 1024 * 1024);
    const pending = uploadFile(env.t.url, token, file);
    await midway;
    await s3.kill();
    const started = Date.now();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: expect.any(String),
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await imageRows(db)).toBe(rows);
    await s3.restart();
    await env.t.app.get(StorageSweeper).sweep();
    expect(await env.storage.files()).toEqual(keys);
    expect(await db.query('SELECT key FROM storage_sweep WHERE due_at <= now()')).toEqual([]);
  });

  it('store unreachable: upload and file routes 503 in bounded time, no row; health storage down → degraded, ready 200; all back after', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', 64, 48), 'before.png');
    const rows = await imageRows(db);
    const keys = await env.storage.files();
    s3.mode = 'refuse';
    let started = Date.now();
    const up = await upload(await makeImage('png', 30, 30));
    expect(up.status).toBe(503);
    expect(await up.json()).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: expect.any(String),
    });
    expect(Date.now() - started).toBeLessThan(15_000);
    for (const link of [img.urls.file, `${img.urls.thumbnail}&size=70`]) {
      started = Date.now();
      expect((await env.t.request(link)).status).toBe(503);
      expect(Date.now() - started).toBeLessThan(15_000);
    }
    expect(await imageRows(db)).toBe(rows);
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.services.storage).toBe('unhealthy');
    expect((await fetch(`${env.t.url}/api/health/services/storage`)).status).toBe(503);
    expect((await fetch(`${env.t.url}/api/health/ready`)).status).toBe(200);

    s3.mode = 'pass';
    expect(await env.storage.files()).toEqual(keys); // nothing half-written
    expect((await upload(await makeImage('png', 30, 30))).status).toBe(201);
    expect((await env.t.request(img.urls.file)).status).toBe(200);
    expect((await env.t.request(`${img.urls.thumbnail}&size=70`)).status).toBe(200);
    expect(await health()).toMatchObject({ status: 'healthy', services: { storage: 'healthy' } });
  });

  it('a store that accepts connections and never answers: 503 within bounded time, never a hang', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', 40, 40), 'hang.png');
    s3.mode = 'hang';
    let started = Date.now();
    expect((await env.t.request(img.urls.file)).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(20_000);
    started = Date.now();
    expect((await upload(await makeImage('png', 20, 20))).status).toBe(503);
    expect(Date.now() - started).toBeLessThan(35_000);
    s3.mode = 'pass';
    await s3.kill(); // drops the hanging connections
    await s3.restart();
    expect((await env.t.request(img.urls.file)).status).toBe(200);
  }, 90_000);

  it('a store over its quota → 507 with the error body, no row and no object; the next upload that fits succeeds', async () => {
    const rows = await imageRows(db);
    const keys = await env.storage.files();
    s3.mode = 'quota';
    const res = await upload(await makeImage('png', 50, 50));
    expect(res.status).toBe(507);
    expect(await res.json()).toEqual({
      statusCode: 507,
      error: 'Insufficient Storage',
      message: expect.any(String),
    });
    expect(await imageRows(db)).toBe(rows);
    s3.mode = 'pass';
    expect(await env.storage.files()).toEqual(keys);
    expect((await upload(await makeImage('png', 50, 50))).status).toBe(201);
  });

  it('a deletion while the store is down is finished by the sweeper: every object of the image goes', async () => {
    const img = await uploadBody(env.t, token, await makeImage('png', 90, 60), 'del.png');
    expect((await env.t.request(`${img.urls.thumbnail}&size=64`)).status).toBe(200);
    const [{ storage_path: key }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
    const stem = (key as string).replace(/\.[a-z]+$/, '');
    const mine = async () => (await env.storage.files()).filter((f) => f.startsWith(stem));
    expect((await mine()).length).toBe(2);
    s3.mode = 'refuse';
    expect((await env.t.request(`/api/images/${img.id}`, { method: 'DELETE', token })).status).toBe(204);
    s3.mode = 'pass';
    expect((await mine()).length).toBe(2);
    await env.t.app.get(StorageSweeper).sweep();
    expect(await mine()).toEqual([]);
  });

  it('a sweep asked for while a pass is under way runs again after it: a deletion recorded meanwhile is finished', async () => {
    const sweeper = env.t.app.get(StorageSweeper);
    const store = env.t.app.get(ObjectStore) as S3ObjectStore;
    // A pass (the timer's, in real life) holds on its first removal until released.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held!: () => void;
    const heldNow = new Promise<void>((r) => (held = r));
    const removeNow = store.removeNow.bind(store);
    const spy = jest.spyOn(store, 'removeNow').mockImplementationOnce(async (key: string) => {
      held();
      await gate;
      return removeNow(key);
    });
    try {
      await sweeper.record(`held-by-a-pass/${Date.now()}.png`, 0);
      const first = sweeper.sweep();
      await heldNow;
      // Meanwhile an image is deleted while the store refuses: its objects are left to the sweeper.
      const img = await uploadBody(env.t, token, await makeImage('png', 40, 30), 'late.png');
      const [{ storage_path: key }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
      const mine = async () => (await env.storage.files()).filter((f) => f.startsWith(key as string));
      expect(await mine()).toEqual([key]);
      s3.mode = 'refuse';
      expect((await env.t.request(`/api/images/${img.id}`, { method: 'DELETE', token })).status).toBe(204);
      s3.mode = 'pass';
      const second = sweeper.sweep();
      release();
      await first;
      await second;
      expect(await mine()).toEqual([]);
    } finally {
      release();
      spy.mockRestore();
    }
  });

  it('the ML call carries a presigned image_url valid for ML_SERVICE_TIMEOUT; presigned links expire', async () => {
    const data = await makeImage('png', 64, 48);
    const img = await uploadBody(env.t, token, data, 'ml.png');
    env.stub.enqueue({
      body: {
        success: true,
        results: { image_width: 64, image_height: 48, processing_time_ms: 1, polygons: [] },
      },
    });
    expect(
      (await env.t.request(`/api/images/${img.id}/segmentation`, { method: 'POST', token })).status,
    ).toBe(200);
    const call = env.stub.calls[env.stub.calls.length - 1].body as { image_path: string; image_url: string };
    const [{ storage_path: key }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [img.id]);
    expect(call.image_path).toBe(key);
    const url = new URL(call.image_url);
    expect(url.origin).toBe(s3.endpoint);
    expect(Number(url.searchParams.get('X-Amz-Expires'))).toBeGreaterThanOrEqual(300);
    const got = await fetch(call.image_url);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);

    const short = await env.t.app.get(ObjectStore).presignGet(key, 1);
    expect((await fetch(short!)).status).toBe(200);
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (status === 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250)); // polls until the link's expiry has passed
      status = (await fetch(short!)).status;
    }
    expect(status).toBe(403);
  });
});

describe('npm run storage:copy-to-s3: UPLOAD_DIR → bucket, so a deployment can switch drivers (CONTRACT §9)', () => {
  it('copies and verifies every original, is resumable, changes no row; the s3 app then serves every image', async () => {
    const s3 = await new S3TestServer().start();
    const localEnv = await startMediaApp('copy-local', {}, 'local');
    let s3Env: MediaEnv | undefined;
    try {
      const { token } = await localEnv.t.register();
      const datas = [await makeImage('png', 40, 30), await makeImage('jpeg', 50, 20)];
      const imgs = [];
      for (const [i, d] of datas.entries()) imgs.push(await uploadBody(localEnv.t, token, d, `c${i}.png`));
      const db = localEnv.t.app.get(DataSource);
      const rowsBefore = await db.query('SELECT * FROM images ORDER BY id');
      const target = storageFor('s3', 'copy-target', s3);
      const { copyUploadsToBucket } = await import('../../../src/storage/copy-to-s3');
      const { S3ObjectStore } = await import('../../../src/storage/s3-object-store');
      const store = new S3ObjectStore({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        bucket: target.bucket!,
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
        forcePathStyle: true,
        prefix: '',
      });
      // From this test's first image on: earlier suites' images (other UPLOAD_DIRs) share the database.
      const opts = {
        databaseUrl: process.env.DATABASE_URL!,
        uploadDir: localEnv.uploadDir,
        s3: store,
        afterId: imgs[0].id - 1,
      };
      const first = await copyUploadsToBucket(opts);
      expect(first.failed + first.missing).toBe(0);
      expect(first.copied).toBe(2);
      for (const [i, img] of imgs.entries()) {
        const [{ storage_path: key }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [
          img.id,
        ]);
        expect((await target.read(key))!.equals(datas[i])).toBe(true);
      }
      // Resumable: a second run uploads nothing that is already there and verified; a corrupt object is copied again.
      const [{ storage_path: k0 }] = await db.query('SELECT storage_path FROM images WHERE id = $1', [
        imgs[0].id,
      ]);
      await target.write(k0, Buffer.from('damaged'));
      const second = await copyUploadsToBucket(opts);
      expect(second).toMatchObject({ copied: 1, failed: 0, missing: 0 });
      expect(second.present).toBe(1);
      expect((await target.read(k0))!.equals(datas[0])).toBe(true);
      expect(await db.query('SELECT * FROM images ORDER BY id')).toEqual(rowsBefore);
      store.client.destroy();

      // The same database under STORAGE_DRIVER=s3 serves the copied images.
      s3Env = await startMediaApp('copy-s3', target.env, 's3', s3);
      for (const [i, img] of imgs.entries()) {
        const res = await s3Env.t.request(`/api/images/${img.id}/file`, { token });
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(datas[i])).toBe(true);
      }
      target.cleanup();
    } finally {
      await s3Env?.stop();
      await localEnv.stop();
      await s3.stop();
    }
  });
});
