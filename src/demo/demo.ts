/**
 * `npm run demo -- <images…>`: logs in as a demo user (created on first use), uploads the images,
 * queues their segmentation, shows live progress from Socket.IO, then prints a table per image and
 * saves the overlay PNG the API draws for each image (`demo-out/<name>.overlay.png`, or DEMO_OUT_DIR).
 *
 * Env: DEMO_API_URL (default http://localhost:5001), DEMO_EMAIL, DEMO_PASSWORD.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { io } from 'socket.io-client';
import type { ServerToClientEvents } from '../common/contracts';

const api = (process.env.DEMO_API_URL ?? 'http://localhost:5001').replace(/\/+$/, '');
const email = process.env.DEMO_EMAIL ?? 'demo@spheroseg.example';
const password = process.env.DEMO_PASSWORD ?? 'demo-password-1';

interface Polygon {
  type: 'external' | 'internal';
  points: [number, number][];
  features: { area?: number; circularity?: number };
}

async function call<T>(route: string, init: RequestInit & { token?: string; json?: unknown } = {}): Promise<{ status: number; body: T }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  const res = await fetch(api + route, { ...init, headers, body });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function login(): Promise<string> {
  const reg = await call<{ accessToken: string }>('/api/auth/register', { method: 'POST', json: { email, password } });
  if (reg.status === 201) return reg.body.accessToken;
  const res = await call<{ accessToken: string }>('/api/auth/login', { method: 'POST', json: { email, password } });
  if (res.status !== 200) throw new Error(`login failed (${res.status})`);
  return res.body.accessToken;
}

function bar(pct: number, width = 24): string {
  const full = Math.round((pct / 100) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(pct).padStart(3)}%`;
}

/** Downloads the overlay the API draws (`GET /api/images/:id/segmentation/overlay`) to the output folder. */
async function overlay(id: number, file: string, token: string): Promise<string> {
  const res = await fetch(`${api}/api/images/${id}/segmentation/overlay?size=4096`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`${file}: overlay refused (${res.status})`);
  // Never beside the input: the images may sit in a read-only or shared folder.
  const dir = process.env.DEMO_OUT_DIR ?? path.resolve('demo-out');
  await mkdir(dir, { recursive: true });
  const out = path.join(dir, `${path.parse(file).name}.overlay.png`);
  await writeFile(out, Buffer.from(await res.arrayBuffer()));
  return out;
}

async function main(): Promise<void> {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: npm run demo -- <image> [image…]\n');
    process.exit(2);
  }
  const token = await login();
  const images = new Map<number, string>();
  for (const file of files) {
    const form = new FormData();
    form.append('file', new Blob([await readFile(file)]), path.basename(file));
    const res = await call<{ id: number; message?: string }>('/api/images', { method: 'POST', body: form, token });
    if (res.status !== 201) throw new Error(`${file}: upload refused (${res.status} ${JSON.stringify(res.body)})`);
    images.set(res.body.id, file);
  }

  const socket = io(api, { path: '/socket.io', auth: { token }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (e) => reject(new Error(`socket: ${e.message}`)));
  });
  const progress = new Map<number, { pct: number; state: string }>([...images.keys()].map((id) => [id, { pct: 0, state: 'queued' }]));
  const render = () => {
    const lines = [...progress].map(([id, p]) => `${path.basename(images.get(id)!).padEnd(32).slice(0, 32)} ${bar(p.pct)} ${p.state}`);
    process.stdout.write(`\x1b[${lines.length}A` + lines.map((l) => `\x1b[2K${l}\n`).join(''));
  };
  process.stdout.write('\n'.repeat(progress.size));
  render();

  const finished = new Promise<void>((resolve) => {
    const check = () => [...progress.values()].every((p) => p.state === 'completed' || p.state === 'failed') && resolve();
    const on = <E extends keyof ServerToClientEvents>(event: E, fn: ServerToClientEvents[E]) => socket.on(event, fn as never);
    on('segmentation:progress', (e) => {
      const p = progress.get(e.imageId);
      if (p) Object.assign(p, { pct: e.progress, state: 'processing' });
      render();
    });
    on('segmentation:completed', (e) => {
      const p = progress.get(e.imageId);
      if (p) Object.assign(p, { pct: 100, state: 'completed' });
      render();
      check();
    });
    on('segmentation:failed', (e) => {
      const p = progress.get(e.imageId);
      if (p && !e.willRetry) Object.assign(p, { state: 'failed' });
      render();
      check();
    });
  });
  const batch = await call<{ tasks: Array<{ imageId: number; status: string }> }>('/api/segmentation/batch', {
    method: 'POST',
    token,
    json: { imageIds: [...images.keys()] },
  });
  if (batch.status !== 202) throw new Error(`batch refused (${batch.status} ${JSON.stringify(batch.body)})`);
  const timeout = new Promise<void>((_, reject) => setTimeout(() => reject(new Error('timed out waiting for results')), 10 * 60_000).unref());
  await Promise.race([finished, timeout]);
  socket.close();

  const rows: string[] = [];
  for (const [id, file] of images) {
    const res = await call<{ polygons: Polygon[] }>(`/api/images/${id}/segmentation`, { token });
    if (res.status !== 200) {
      rows.push(`${path.basename(file).padEnd(32)} ${'failed'.padStart(10)}`);
      continue;
    }
    const spheroids = res.body.polygons.filter((p) => p.type === 'external');
    const area = spheroids.reduce((a, p) => a + (p.features.area ?? 0), 0);
    const circ = spheroids.length ? spheroids.reduce((a, p) => a + (p.features.circularity ?? 0), 0) / spheroids.length : 0;
    const out = await overlay(id, file, token);
    rows.push(
      `${path.basename(file).padEnd(32).slice(0, 32)} ${String(spheroids.length).padStart(10)} ${area.toFixed(0).padStart(12)} ${circ.toFixed(3).padStart(12)}  ${out}`,
    );
  }
  process.stdout.write(`\n${'image'.padEnd(32)} ${'spheroids'.padStart(10)} ${'area (px²)'.padStart(12)} ${'circularity'.padStart(12)}  overlay\n`);
  process.stdout.write(rows.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
