import { Logger } from '@nestjs/common';

/**
 * Warns at most once per `intervalMs` and counts what it swallowed in between, so a Redis outage or
 * a misbehaving client cannot flood the logs.
 */
export class RateLimitedWarner {
  private last = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 5000,
  ) {}

  warn(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.last = now;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
