/** Longest `original_name` the column holds (characters). */
export const ORIGINAL_NAME_MAX = 255;

/**
 * Client-supplied file name → metadata safe to store and echo: only the last path component (either
 * separator), no control or bidi-override characters, trimmed, at most 255 characters (whole code
 * points). Never used to build a path. Empty results fall back to `fallback`.
 */
export function sanitizeOriginalName(raw: string | undefined | null, fallback = 'image'): string {
  if (typeof raw !== 'string') return fallback;
  const base = raw.split(/[/\\]/).pop() ?? '';
  const cleaned = base
    .normalize('NFC')
    // C0/C1 controls, DEL, and bidi overrides/isolates that could disguise an extension
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, '')
    .trim();
  if (cleaned === '' || cleaned === '.' || cleaned === '..') return fallback;
  const chars = Array.from(cleaned);
  return chars.length > ORIGINAL_NAME_MAX ? chars.slice(0, ORIGINAL_NAME_MAX).join('') : cleaned;
}
