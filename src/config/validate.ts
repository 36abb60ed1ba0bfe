import type { ObjectSchema } from 'joi';

export class ConfigValidationError extends Error {}

/**
 * Validates `raw` (normally `process.env`) against a Joi object schema. An empty string counts as unset
 * for the schema's own keys, as in most twelve-factor services. Throws a ConfigValidationError whose
 * message is one line naming the variable and what is wrong; the offending value is never echoed (it
 * may be a secret). Shared by the backend's schema and the reference segmenter's.
 */
export function validateWithSchema<T>(schema: ObjectSchema, raw: Record<string, unknown>): T {
  const known = new Set(Object.keys(schema.describe().keys ?? {}));
  const input: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v !== '' || !known.has(k)) input[k] = v;
  }
  const { error, value } = schema.validate(input, {
    abortEarly: true,
    convert: true,
    errors: { wrap: { label: false } },
  });
  if (error) {
    const detail = error.details[0];
    const name = String(detail.path[0] ?? detail.context?.key ?? 'configuration');
    const what = detail.message.replace(new RegExp(`^"?${name}"?\\s*`), '');
    throw new ConfigValidationError(`Invalid configuration: ${name} ${what}`);
  }
  return value as T;
}
