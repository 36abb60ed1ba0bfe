/** Nest injection names of the Bull queues. The Redis key prefix carries QUEUE_NAME (see QueueModule). */
export const SEGMENTATION_QUEUE = 'segmentation';
export const DEAD_LETTER_QUEUE = 'segmentation-dead-letter';

/**
 * Contract priority (1..10, 10 most urgent) → Bull priority (1 highest). With priorities disabled
 * every job is queued without one (plain FIFO).
 */
export function toBullPriority(priority: number, enabled: boolean): number | undefined {
  if (!enabled) return undefined;
  return 11 - Math.min(10, Math.max(1, Math.round(priority)));
}

/** Key prefix of one deployment's queues; the hash tag keeps every key of a queue in one cluster slot. */
export const queuePrefix = (queueName: string) => `{${queueName}}`;
