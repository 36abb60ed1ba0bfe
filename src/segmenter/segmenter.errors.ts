/** An error answered as `{ success: false, error: message }` with `status`; the message never names a server path. */
export class SegmenterError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
