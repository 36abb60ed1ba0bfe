import sharp from 'sharp';
import type { TestApp } from './app';
import type { TaskView } from '../../src/segmentation/views';

/** A small valid PNG (grey disc on white) made in memory. */
export async function makePng(width = 64, height = 48): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/><circle cx="${width / 2}" cy="${height / 2}" r="${Math.min(width, height) / 3}" fill="#555"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Uploads an image through the real API; returns its id. */
export async function uploadImage(t: { url: string }, token: string, data?: Buffer, name = 'spheroid.png'): Promise<number> {
  const form = new FormData();
  form.append('file', new Blob([data ?? (await makePng())]), name);
  const res = await fetch(`${t.url}/api/images`, { method: 'POST', body: form, headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: number }).id;
}

export type TaskBody = TaskView;

/** Polls a task until `until(task)` holds (default: a final state). */
export async function waitForTask(
  t: Pick<TestApp, 'request'>,
  token: string,
  taskId: string,
  until: (task: TaskBody) => boolean = (x) => ['completed', 'failed', 'cancelled'].includes(x.status),
  timeoutMs = 30_000,
): Promise<TaskBody> {
  const deadline = Date.now() + timeoutMs;
  let last: TaskBody | undefined;
  while (Date.now() < deadline) {
    const res = await t.request(`/api/segmentation/tasks/${taskId}`, { token });
    if (res.status === 200) {
      last = (await res.json()) as TaskBody;
      if (until(last)) return last;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`task ${taskId} did not reach the expected state; last: ${JSON.stringify(last)}`);
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
