import { Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Pool } from 'undici';
import { mlConfig } from '../config/configuration';
import { ObjectStore } from '../storage/object-store';
import { ML_FEATURE_KEYS, type MlHealthResponse, type MlPolygon, type MlSegmentRequest, type MlSegmentResults } from '../common/contracts';
import {
  MlAbortedError,
  MlBadInputError,
  MlError,
  MlServiceError,
  MlTimeoutError,
  sanitizeMlMessage,
} from './ml.errors';

/** Idle keep-alive connections are closed after this (below the 5 s default of common servers). */
const IDLE_SOCKET_MS = 4000;

interface Answer {
  status: number;
  text: string;
}

/**
 * The only place that talks HTTP to the ML service (CONTRACT §8). Every outcome is either a validated
 * result or one of the typed errors of `ml.errors.ts`; nothing here opens a connection until called.
 * Error messages never quote the service URL (it may carry credentials) nor server paths.
 *
 * One undici `Pool` of keep-alive connections, with its `request` API rather than the global `fetch`
 * (whose WHATWG streams and header objects cost several times the CPU per call) or `node:http`
 * (`bench/ml-client`: 0.55–0.76 of its CPU per call in two runs, 10 calls in flight). Redirects are
 * never followed (a 3xx is a malformed answer), an aborted signal destroys the request's connection,
 * and idle connections are closed after {@link IDLE_SOCKET_MS}. Timing is the caller's signal's alone
 * (undici's own header and body timeouts are off).
 */
@Injectable()
export class MlHttpClient implements OnApplicationShutdown {
  private readonly base: URL;
  private readonly pool: Pool;
  /** The path prefix of ML_SERVICE_URL, without a trailing slash. */
  private readonly prefix: string;
  /** Request headers without a body; `user:password` from the URL goes as Basic auth (never quoted in messages). */
  private readonly headers: Record<string, string> = { accept: 'application/json' };
  private readonly bodyHeaders: Record<string, string>;

  constructor(
    @Inject(mlConfig.KEY) private readonly cfg: ConfigType<typeof mlConfig>,
    @Optional() private readonly store?: ObjectStore,
  ) {
    this.base = new URL(cfg.url);
    this.prefix = this.base.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.base.origin, {
      keepAliveTimeout: IDLE_SOCKET_MS,
      keepAliveMaxTimeout: IDLE_SOCKET_MS,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    if (this.base.username || this.base.password) {
      const auth = `${decodeURIComponent(this.base.username)}:${decodeURIComponent(this.base.password)}`;
      this.headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
    }
    this.bodyHeaders = { ...this.headers, 'content-type': 'application/json' };
  }

  /** Closes the keep-alive connections (in-flight calls are aborted through their signals). */
  async onApplicationShutdown(): Promise<void> {
    await this.pool.destroy().catch(() => undefined);
  }

  /**
   * POST `/segment`. `signal` aborts the request and its socket. When the signal's `reason` is an
   * {@link MlError} that error is thrown; a `TimeoutError` reason becomes {@link MlTimeoutError};
   * any other reason becomes {@link MlAbortedError}.
   */
  async segment(req: MlSegmentRequest, signal: AbortSignal): Promise<MlSegmentResults> {
    const body = await this.request('/segment', 'POST', signal, JSON.stringify(await this.wireRequest(req)));
    const results = parseSegmentBody(body);
    if (!results) throw new MlServiceError('ML service returned a malformed segmentation response');
    return results;
  }

  /**
   * The §8 body: `image_path` and `task_id`, and with STORAGE_DRIVER=s3 `image_url`, a presigned GET
   * link to the object valid for ML_SERVICE_TIMEOUT plus a minute (signed locally: no request to the store).
   */
  private async wireRequest(req: MlSegmentRequest): Promise<MlSegmentRequest> {
    const imageUrl = req.image_url ?? (await this.store?.presignGet(req.image_path, this.cfg.timeoutMs / 1000 + 60));
    return imageUrl
      ? { image_path: req.image_path, task_id: req.task_id, image_url: imageUrl }
      : { image_path: req.image_path, task_id: req.task_id };
  }

  /** GET `/health`, bounded by `timeoutMs`. Resolves with the service's answer or throws a typed error. */
  async health(timeoutMs: number): Promise<MlHealthResponse> {
    const body = await this.request('/health', 'GET', AbortSignal.timeout(timeoutMs), undefined, timeoutMs);
    if (!isObject(body) || typeof body.status !== 'string') {
      throw new MlServiceError('ML service returned a malformed health response');
    }
    return { status: body.status, model_loaded: body.model_loaded === true };
  }

  private async request(path: string, method: 'GET' | 'POST', signal: AbortSignal, body?: string, timeoutMs?: number): Promise<unknown> {
    let res: Answer;
    try {
      res = await this.exchange(path, method, signal, body);
    } catch (err) {
      throw this.transportError(err, signal, timeoutMs);
    }
    const { status, text } = res;
    if (status >= 400 && status < 500) {
      const parsed = tryJson(text);
      const message = isObject(parsed) ? parsed.error : undefined;
      throw new MlBadInputError(sanitizeMlMessage(message, `ML service rejected the input (${status})`), status);
    }
    if (status >= 500) throw new MlServiceError(`ML service failed with status ${status}`, status);
    if (status < 200 || status >= 300) {
      // includes 3xx: redirects are refused, never followed
      throw new MlServiceError(`ML service answered with unexpected status ${status}`, status);
    }
    const parsed = tryJson(text);
    if (parsed === undefined) throw new MlServiceError('ML service returned a body that is not JSON', status);
    return parsed;
  }

  /** One HTTP exchange; rejects with the transport error (or the signal's reason) when it fails. */
  private async exchange(path: string, method: 'GET' | 'POST', signal: AbortSignal, body?: string): Promise<Answer> {
    if (signal.aborted) throw signal.reason;
    const res = await this.pool.request({
      path: this.prefix + path,
      method,
      headers: body === undefined ? this.headers : this.bodyHeaders,
      body,
      signal,
    });
    // A connection lost mid-body rejects here: a transport failure.
    return { status: res.statusCode, text: await res.body.text() };
  }

  /** Maps a request/body-read failure to a typed error, without quoting the URL. */
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
  // a system error (ECONNREFUSED, ECONNRESET, ...), possibly wrapped in `cause`
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
  for (const k of ML_FEATURE_KEYS) {
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
