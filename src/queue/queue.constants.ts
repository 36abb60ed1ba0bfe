/** Nest injection names of the Bull queues. The Redis key prefix carries QUEUE_NAME (see QueueModule). */
export const DEAD_LETTER_QUEUE = 'segmentation-dead-letter';

/**
 * One FIFO Bull queue per contract priority (10 = most urgent), consumed most urgent first by the
 * worker's {@link BandConsumer}. Bull 4 inserts a prioritised job with a walk of the wait list (O(n)
 * in the number of less urgent waiting jobs, blocking Redis meanwhile); a plain band queue adds with
 * one LPUSH whatever the depth. Ordered most urgent first.
 */
export const PRIORITY_BANDS: readonly number[] = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1];

/** Bull queue (and Nest injection) name of a band, e.g. `segmentation-p10`. */
export const bandQueueName = (band: number) => `segmentation-p${band}`;

/**
 * The band a task of contract priority `priority` (1..10) is queued in. With priorities disabled every
 * job goes to one band (plain FIFO).
 */
export function bandOf(priority: number, enabled: boolean): number {
  if (!enabled) return 1;
  return Math.min(10, Math.max(1, Math.round(priority)));
}

/** Key prefix of one deployment's queues; the hash tag keeps every key of a queue in one cluster slot. */
export const queuePrefix = (queueName: string) => `{${queueName}}`;
