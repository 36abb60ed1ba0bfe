import {
  BadRequestException,
  CanActivate,
  ExecutionContext,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { AuthUser } from '../auth/auth-user';
import { MAX_INT4 } from '../common/input-rules';
import { AccessPolicy, AccessSubject } from './access.policy';
import { ACCESS_RULES_KEY, AccessRule } from './access.types';

/** Most ids one request may name (exports, batches): more is 400. */
export const MAX_IDS_PER_REQUEST = 10_000;
const DECIMAL_ID = /^[0-9]{1,10}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Req {
  params?: Record<string, string | undefined>;
  query?: Record<string, unknown>;
  body?: unknown;
  user?: AuthUser;
  mediaAccess?: { by: 'bearer' | 'link' };
  granted?: Record<string, unknown>;
}

/**
 * Enforces the `@Access(...)` rules of a route (see access.rules.ts) with AccessPolicy, after the
 * global auth guard (and, on the file routes, after MediaAccessGuard). Malformed ids are 400 here,
 * with the messages of the route pipes; the resource loaded for a rule is handed to the route
 * (`@Granted('image')`), so the check costs no read the route did not make before.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly policy: AccessPolicy,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const rules = this.reflector.get<AccessRule[] | undefined>(ACCESS_RULES_KEY, ctx.getHandler());
    if (!rules?.length) return true;
    const req = ctx.switchToHttp().getRequest<Req>();
    req.granted ??= {};
    for (const rule of rules) await this.check(req, rule);
    return true;
  }

  private async check(req: Req, rule: AccessRule): Promise<void> {
    const user = req.user;
    if (rule.on === 'project' || rule.on === 'images') return this.checkIds(req, rule);
    {
      const raw = req.params?.[rule.param];
      const id = rule.on === 'image' ? parseId(raw, rule.param) : parseUuid(raw, rule.param);
      const found = await this.policy.loader(rule.on)(id);
      const what = rule.on === 'image' ? 'image' : 'task';
      if (!found) throw this.notFound(what);
      // A valid signed link of this image (MediaAccessGuard) stands in for a role on the file routes.
      const byLink = rule.link === true && req.mediaAccess?.by === 'link';
      if (!byLink)
        this.policy.enforce(
          user ? this.policy.decide(user, found.subject, rule.need) : 'hidden',
          what,
          rule.need,
        );
      req.granted![rule.on] = found.entity;
    }
  }

  private async checkIds(req: Req, rule: Extract<AccessRule, { on: 'project' | 'images' }>): Promise<void> {
    const user = req.user;
    const raw =
      rule.from === 'param'
        ? req.params?.[rule.key]
        : rule.from === 'query'
          ? req.query?.[rule.key]
          : bodyField(req.body, rule.key);
    if (raw === undefined || (raw === null && rule.from === 'body')) {
      if (rule.optional) return;
      if (rule.from !== 'param') return; // the route's validation answers 400 for the missing field
    }
    if (rule.on === 'project') {
      const projectId = rule.from === 'body' ? bodyId(raw, rule.key) : parseId(raw, rule.key);
      const subject: AccessSubject = { ownerId: 0, projectId };
      this.policy.enforce(
        user ? this.policy.decide(user, subject, rule.need) : 'hidden',
        'project',
        rule.need,
      );
      return;
    }
    const ids =
      rule.from === 'query' ? parseIdList(raw, rule.key, rule.max) : bodyIdList(raw, rule.key, rule.max);
    if (ids.length === 0) return; // validation refuses an empty list where one is required
    const subjects = await this.policy.imagesLoader()(ids);
    let forbidden = false;
    for (const id of ids) {
      const s = subjects.get(id);
      const verdict = s && user ? this.policy.decide(user, s, rule.need) : 'hidden';
      if (verdict === 'hidden') throw this.notFound(ids.length === 1 ? 'image' : 'one or more images were');
      if (verdict === 'forbidden') forbidden = true;
    }
    if (forbidden) this.policy.enforce('forbidden', 'image', rule.need);
  }

  private notFound(what: string): Error {
    return new NotFoundException(`${what} not found`);
  }
}

function bodyField(body: unknown, key: string): unknown {
  return body && typeof body === 'object' && !Array.isArray(body)
    ? (body as Record<string, unknown>)[key]
    : undefined;
}

/** A path or query id: decimal digits within PostgreSQL's integer (as ParseIntIdPipe). */
export function parseId(raw: unknown, name: string): number {
  const n = typeof raw === 'string' && DECIMAL_ID.test(raw) ? Number(raw) : NaN;
  if (!(n <= MAX_INT4))
    throw new BadRequestException(`${name} must be a decimal integer between 0 and ${MAX_INT4}`);
  return n;
}

function parseUuid(raw: unknown, name: string): string {
  if (typeof raw !== 'string' || !UUID.test(raw)) throw new BadRequestException(`${name} must be a UUID`);
  return raw.toLowerCase();
}

/** A JSON body id: an integer within PostgreSQL's integer range. */
function bodyId(raw: unknown, name: string): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > MAX_INT4) {
    throw new BadRequestException([`${name} must be an integer between 1 and ${MAX_INT4}, or null`]);
  }
  return raw;
}

function bodyIdList(raw: unknown, name: string, max = MAX_IDS_PER_REQUEST): number[] {
  if (!Array.isArray(raw)) throw new BadRequestException([`${name} must be an array of image ids`]);
  if (raw.length > max) throw new BadRequestException([`${name} must contain no more than ${max} elements`]);
  for (const v of raw) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_INT4) {
      throw new BadRequestException([`each value in ${name} must be an integer between 1 and ${MAX_INT4}`]);
    }
  }
  return [...new Set(raw as number[])];
}

/** `?imageIds=1,2,3` (also repeated): distinct ids, 400 when malformed or more than MAX_IDS_PER_REQUEST. */
export function parseIdList(raw: unknown, name: string, max = MAX_IDS_PER_REQUEST): number[] {
  const parts = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => String(v).split(','));
  if (parts.length > max) throw new BadRequestException(`${name}: at most ${max} ids`);
  const ids = new Set<number>();
  for (const part of parts) {
    const s = part.trim();
    if (!DECIMAL_ID.test(s) || Number(s) > MAX_INT4) {
      throw new BadRequestException(`${name} must be a comma-separated list of image ids (decimal integers)`);
    }
    ids.add(Number(s));
  }
  return [...ids].sort((a, b) => a - b);
}
