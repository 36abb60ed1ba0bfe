import { ArgumentMetadata, BadRequestException, HttpStatus, Injectable, PipeTransform, ValidationPipe } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { applyDecorators } from '@nestjs/common';
import { NotEquals, ValidateIf } from 'class-validator';

/** Deepest JSON body accepted (CONTRACT §3); `{}` is depth 1. */
export const MAX_JSON_DEPTH = 32;
/** PostgreSQL `integer`. */
export const MAX_INT4 = 2_147_483_647;

/**
 * Nesting depth of a JSON text, counted on its bytes (brackets outside strings), so a depth bomb is
 * refused before anything is parsed or validated (class-validator/class-transformer recurse and
 * overflow the stack at a few thousand levels). Stops as soon as `max` is exceeded.
 */
export function jsonDepthExceeds(text: Buffer, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * The one JSON body parser of the API: Fastify's own (prototype-poisoning protection, body limit)
 * behind a depth check → 400. Registered instead of Nest's default parsers, so only JSON (and the
 * multipart upload) is accepted; other body types get 415.
 */
export function useJsonBodyParser(app: NestFastifyApplication, bodyLimit: number): void {
  const fastify = app.getHttpAdapter().getInstance();
  const parse = fastify.getDefaultJsonParser('error', 'error');
  app.useBodyParser('application/json', { bodyLimit }, (req, body, done) => {
    if (jsonDepthExceeds(body)) {
      done(new BadRequestException(`request body is nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      return;
    }
    parse(req as Parameters<typeof parse>[0], body.toString('utf8'), done);
  });
}

const DECIMAL_ID = /^[0-9]{1,10}$/;

/**
 * `:id` path parameters: decimal digits only, within PostgreSQL's `integer` (0 … 2147483647); anything
 * else (`0x10`, `1e1`, `-1`, `+1`, ` 1`, 11+ digits, 2147483648) is 400 naming the parameter, so a
 * loose parse never reaches another row. Used by every `:id` route.
 */
@Injectable()
export class ParseIntIdPipe implements PipeTransform<string, number> {
  transform(value: string, meta: ArgumentMetadata): number {
    const n = typeof value === 'string' && DECIMAL_ID.test(value) ? Number(value) : NaN;
    if (!(n <= MAX_INT4)) {
      throw new BadRequestException(`${meta.data ?? 'id'} must be a decimal integer between 0 and ${MAX_INT4}`);
    }
    return n;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `:taskId` path parameters: a UUID (any version), else 400 naming the parameter. */
@Injectable()
export class ParseUuidParamPipe implements PipeTransform<string, string> {
  transform(value: string, meta: ArgumentMetadata): string {
    if (typeof value !== 'string' || !UUID.test(value)) {
      throw new BadRequestException(`${meta.data ?? 'id'} must be a UUID`);
    }
    return value.toLowerCase();
  }
}

/**
 * An optional DTO field: absent is fine, `null` is a validation error naming the field (class-validator's
 * `@IsOptional` lets `null` through, and it then reached NOT NULL columns as a 500). Use instead of
 * `@IsOptional()` everywhere.
 */
export function OptionalField(): PropertyDecorator {
  return applyDecorators(
    ValidateIf((_o, v) => v !== undefined),
    NotEquals(null, { message: ({ property }) => `${property} must not be null` }),
  );
}

/**
 * The global validation pipe (whitelist, forbid unknown, transform) for bodies and queries. Path
 * parameters are left to their own pipes: with `transform`, Nest's pipe would turn a `number` param
 * into `+value` first (`0x10` → 16, `1e1` → 10) before ParseIntIdPipe could refuse it.
 */
export class AppValidationPipe extends ValidationPipe {
  constructor() {
    super({ whitelist: true, forbidNonWhitelisted: true, transform: true, errorHttpStatusCode: HttpStatus.BAD_REQUEST });
  }

  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'param') return Promise.resolve(value);
    return super.transform(value, metadata) as Promise<unknown>;
  }
}
