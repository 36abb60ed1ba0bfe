import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { mlConfig } from '../config/configuration';
import type { MlHealthResponse, MlPolygon, MlSegmentRequest, MlSegmentResults } from '../common/contracts';
import {
  MlAbortedError,
  MlBadInputError,
  MlError,
  MlServiceError,
  MlTimeoutError,
  sanitizeMlMessage,
} from './ml.errors';

/**
 * The only place that talks HTTP to the ML service (CONTRACT §8). Every outcome is either a validated
 * result or one of the typed errors of `ml.errors.ts`; nothing here opens a connection until called.
 * Error messages never quote the service URL (it may carry credentials) nor server paths.
 */
@Injectable()
export class MlHttpClient {
  constructor(@Inject(mlConfig.KEY) private readonly cfg: ConfigType<typeof mlConfig>) {}

  /**
   * POST `/segment`. `signal` aborts the request and its socket. When the signal's `reason` is an
   * {@link MlError} that error is thrown; a `TimeoutError` reason becomes {@link MlTimeoutError};
   * any other reason becomes {@link MlAbortedError}.
   */
  async segment(req: MlSegmentRequest, signal: AbortSignal): Promise<MlSegmentResults> {
    const body = await this.request('/segment', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ image_path: req.image_path, task_id: req.task_id }),
      signal,
    });
    const results = parseSegmentBody(body);
    if (!results) throw new MlServiceError('ML service returned a malformed segmentation response');
    return results;
  }

  /** GET `/health`, bounded by `timeoutMs`. Resolves with the service's answer or throws a typed error. */
  async health(timeoutMs: number): Promise<MlHealthResponse> {
    const body = await this.request('/health', {
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
      timeoutMs,
    });
    if (!isObject(body) || typeof body.status !== 'string') {
      throw new MlServiceError('ML service returned a malformed health response');
    }
    return { status: body.status, model_loaded: body.model_loaded === true };
  }

  private async request(
    path: string,
    init: {
      method: string;
      headers: Record<string, string>;
      body?: string;
      signal: AbortSignal;
      timeoutMs?: number;
    },
  ): Promise<unknown> {
    const { signal } = init;
    let res: Response;
    try {
      res = await fetch(`${this.cfg.url}${path}`, {
        method: init.method,
        headers: init.headers,
        body: init.body,
        signal,
        redirect: 'error',
      });
    } catch (err) {
      throw this.transportError(err, signal, init.timeoutMs);
    }

    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.transportError(err, signal, init.timeoutMs);
    }

    if (res.status >= 400 && res.status < 500) {
      const parsed = tryJson(text);
      const message = isObject(parsed) ? parsed.error : undefined;
      throw new MlBadInputError(
        sanitizeMlMessage(message, `ML service rejected the input (${res.status})`),
        res.status,
      );
    }
    if (res.status >= 500)
      throw new MlServiceError(`ML service failed with status ${res.status}`, res.status);
    if (res.status < 200 || res.status >= 300) {
      throw new MlServiceError(`ML service answered with unexpected status ${res.status}`, res.status);
    }
    const parsed = tryJson(text);
    if (parsed === undefined)
      throw new MlServiceError('ML service returned a body that is not JSON', res.status);
    return parsed;
  }

  /** Maps a fetch/body-read failure to a typed error, without quoting the URL. */
  private transportError(err: unknown, signal: AbortSignal, timeoutMs?: number): MlError {
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof MlError) return reason;
      // AbortSignal.timeout() aborts with a DOMException named TimeoutError (not always `instanceof Error`)
      if ((reason as { name?: unknown } | null)?.name === 'TimeoutError') {
        return new MlTimeoutError(timeoutMs ?? this.cfg.timeoutMs);
      }
      return new MlAbortedError();
    }
    const code = errorCode(err);
    return new MlServiceError(code ? `ML service unreachable (${code})` : 'ML service unreachable');
  }
}

function errorCode(err: unknown): string | undefined {
  // undici: TypeError('fetch failed') with `cause` = system error (ECONNREFUSED, ECONNRESET, ...)
  for (let e: unknown = err, i = 0; e && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
  }
  return undefined;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

const FEATURE_KEYS = [
  'area',
  'perimeter',
  'circularity',
  'solidity',
  'eccentricity',
  'major_axis',
  'minor_axis',
  'orientation',
  'centroid_x',
  'centroid_y',
] as const;

/** Validates a §8 `/segment` 200 body; returns the results or undefined when anything is off. */
export function parseSegmentBody(body: unknown): MlSegmentResults | undefined {
  if (!isObject(body) || body.success !== true || !isObject(body.results)) return undefined;
  const r = body.results;
  if (!isNum(r.image_width) || !isNum(r.image_height) || !Array.isArray(r.polygons)) return undefined;
  const polygons: MlPolygon[] = [];
  for (const p of r.polygons as unknown[]) {
    const poly = parsePolygon(p);
    if (!poly) return undefined;
    polygons.push(poly);
  }
  return {
    image_width: r.image_width,
    image_height: r.image_height,
    processing_time_ms: isNum(r.processing_time_ms) ? r.processing_time_ms : 0,
    polygons,
  };
}

function parsePolygon(p: unknown): MlPolygon | undefined {
  if (!isObject(p)) return undefined;
  if (typeof p.id !== 'number' && typeof p.id !== 'string') return undefined;
  if (p.type !== 'external' && p.type !== 'internal') return undefined;
  const parent = p.parent_id ?? null;
  if (parent !== null && typeof parent !== 'number' && typeof parent !== 'string') return undefined;
  if (!Array.isArray(p.points)) return undefined;
  const points: [number, number][] = [];
  for (const pt of p.points as unknown[]) {
    if (!Array.isArray(pt) || pt.length < 2 || !isNum(pt[0]) || !isNum(pt[1])) return undefined;
    points.push([pt[0], pt[1]]);
  }
  if (!isObject(p.features)) return undefined;
  const f = p.features;
  const features = {} as MlPolygon['features'];
  for (const k of FEATURE_KEYS) {
    const v = f[k];
    if (!isNum(v)) return undefined;
    features[k] = v;
  }
  return {
    id: p.id,
    type: p.type,
    parent_id: parent as number | string | null,
    points,
    class: typeof p.class === 'string' ? p.class : 'spheroid',
    confidence: isNum(p.confidence) ? p.confidence : 0,
    features,
  };
}
