import { type MessagePort, parentPort } from 'node:worker_threads';
import sharp from 'sharp';
import { ImageDecodeError } from './pipeline/decode';
import { type Cv, loadOpenCv } from './pipeline/opencv';
import { segmentImageFile } from './pipeline/segment';
import type { SegmentTask, WorkerMessage } from './worker-protocol';

/**
 * Segmentation worker thread: loads OpenCV once, says `ready`, then segments one task at a time.
 * Error messages sent back never carry a file path.
 */
async function main(port: MessagePort): Promise<void> {
  // The pool runs one image per thread; libvips threads on top would only compete with the other workers.
  sharp.concurrency(1);
  sharp.cache(false);
  const { cv } = await loadOpenCv();
  port.on('message', (task: SegmentTask) => {
    void run(cv, task).then((reply) => port.postMessage(reply));
  });
  port.postMessage({ type: 'ready' } satisfies WorkerMessage);
}

async function run(cv: Cv, task: SegmentTask): Promise<WorkerMessage> {
  try {
    const results = await segmentImageFile(cv, task.imagePath, task.maxPixels);
    return { type: 'result', id: task.id, results };
  } catch (err) {
    if (err instanceof ImageDecodeError)
      return { type: 'failure', id: task.id, kind: 'bad-image', message: err.message };
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { type: 'failure', id: task.id, kind: 'not-found', message: 'image not found' };
    const detail = err instanceof Error ? err.name : typeof err;
    return { type: 'failure', id: task.id, kind: 'internal', message: `segmentation failed (${detail})` };
  }
}

if (!parentPort) throw new Error('segment.worker must run in a worker thread');
void main(parentPort);
