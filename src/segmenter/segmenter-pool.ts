import { Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MlSegmentResults } from '../common/contracts';
import type { FailureKind, SegmentTask, WorkerMessage } from './worker-protocol';

/** A segmentation that did not produce results; `kind` says whose fault it is. */
export class SegmentFailure extends Error {
  constructor(
    readonly kind: FailureKind | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  task: SegmentTask;
  resolve(results: MlSegmentResults): void;
  reject(error: SegmentFailure): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  current?: Pending;
}

export interface PoolOptions {
  threads: number;
  /** The compiled worker script; by default `segment.worker.js` next to this file. */
  script?: string;
}

/**
 * A fixed pool of worker threads, each with its own OpenCV runtime, fed from one FIFO queue: the
 * HTTP thread never runs a segmentation, and N threads segment N images at once. A worker that dies
 * fails its current task (as an internal error) and is replaced.
 */
export class SegmenterPool implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(SegmenterPool.name);
  private readonly slots = new Set<Slot>();
  private readonly queue: Pending[] = [];
  private readonly script: string;
  private nextId = 1;
  private closing = false;

  constructor(private readonly options: PoolOptions) {
    this.script = options.script ?? path.join(__dirname, 'segment.worker.js');
  }

  get threads(): number {
    return this.options.threads;
  }

  /** Worker threads whose OpenCV runtime is initialised. */
  get readyWorkers(): number {
    return [...this.slots].filter((s) => s.ready).length;
  }

  /** Starts every worker and resolves once all have loaded OpenCV. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.threads }, () => this.spawn()));
    this.logger.log({ msg: 'segmentation workers ready', threads: this.options.threads });
  }

  onModuleInit(): Promise<void> {
    return this.start();
  }

  /** Called after the HTTP server has closed, so requests in flight finish first. */
  onApplicationShutdown(): Promise<void> {
    return this.close();
  }

  run(imagePath: string, maxPixels: number): Promise<MlSegmentResults> {
    if (this.closing) return Promise.reject(new SegmentFailure('unavailable', 'segmenter is shutting down'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { id: this.nextId++, imagePath, maxPixels }, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const pending of this.queue.splice(0))
      pending.reject(new SegmentFailure('unavailable', 'segmenter is shutting down'));
    await Promise.all([...this.slots].map((slot) => slot.worker.terminate()));
  }

  private spawn(): Promise<void> {
    const slot: Slot = { worker: new Worker(this.script), ready: false };
    this.slots.add(slot);
    return new Promise((resolve, reject) => {
      slot.worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') {
          slot.ready = true;
          resolve();
          this.dispatch();
        } else {
          this.settle(slot, message);
        }
      });
      slot.worker.on('error', (err) =>
        this.logger.error({ msg: 'segmentation worker failed', err: err.message }),
      );
      slot.worker.on('exit', (code) => {
        this.slots.delete(slot);
        slot.current?.reject(new SegmentFailure('internal', 'segmentation worker stopped'));
        if (!slot.ready)
          reject(new Error(`segmentation worker exited with code ${code} before loading OpenCV`));
        if (!this.closing && slot.ready) this.respawn(code);
      });
    });
  }

  private respawn(code: number): void {
    this.logger.warn({ msg: 'segmentation worker exited, starting another', code });
    this.spawn().catch((err: Error) =>
      this.logger.error({ msg: 'segmentation worker restart failed', err: err.message }),
    );
  }

  private settle(slot: Slot, message: Exclude<WorkerMessage, { type: 'ready' }>): void {
    const pending = slot.current;
    slot.current = undefined;
    if (pending?.task.id === message.id) {
      if (message.type === 'result') pending.resolve(message.results);
      else pending.reject(new SegmentFailure(message.kind, message.message));
    }
    this.dispatch();
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.current) continue;
      slot.current = this.queue.shift();
      slot.worker.postMessage(slot.current?.task);
    }
  }
}
