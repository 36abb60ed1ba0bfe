import type { MlSegmentRequest } from '../common/contracts';
import { SegmenterError } from './segmenter.errors';

const MAX_FIELD_LENGTH = 4096;

/** Checks a `POST /segment` body: `image_path` and `task_id`, non-empty strings; `image_url` optional (a string). */
export function parseSegmentRequest(body: unknown): MlSegmentRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SegmenterError(400, 'body must be a JSON object { image_path, task_id }');
  }
  const { image_path: imagePath, task_id: taskId, image_url: imageUrl } = body as Record<string, unknown>;
  const req: MlSegmentRequest = {
    image_path: requiredString('image_path', imagePath),
    task_id: requiredString('task_id', taskId),
  };
  if (imageUrl !== undefined) req.image_url = requiredString('image_url', imageUrl);
  return req;
}

function requiredString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new SegmenterError(400, `${name} must be a non-empty string`);
  if (value.length > MAX_FIELD_LENGTH || value.includes('\0'))
    throw new SegmenterError(400, `${name} is not valid`);
  return value;
}
