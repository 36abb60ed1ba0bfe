import { BeforeApplicationShutdown, Global, Injectable, Module } from '@nestjs/common';

/**
 * Set as soon as shutdown begins (SIGTERM): readiness turns 503 at once and consumers stop taking work.
 * `markShuttingDown()` is also called directly from the signal handler, before Nest's hooks run.
 */
@Injectable()
export class ShutdownState implements BeforeApplicationShutdown {
  private shuttingDown = false;
  private readonly listeners: Array<() => void> = [];

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  markShuttingDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const fn of this.listeners) fn();
  }

  onShutdown(fn: () => void): void {
    this.listeners.push(fn);
  }

  beforeApplicationShutdown(): void {
    this.markShuttingDown();
  }
}

@Global()
@Module({ providers: [ShutdownState], exports: [ShutdownState] })
export class ShutdownModule {}
