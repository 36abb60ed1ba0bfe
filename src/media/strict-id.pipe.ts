import { BadRequestException, createParamDecorator, ExecutionContext } from '@nestjs/common';

const MAX_INT4 = 2_147_483_647;

/**
 * `:id` as CONTRACT §3 wants it: a decimal integer within PostgreSQL's `integer` range, nothing else
 * (`0x10`, `1e1`, `-1`, `+1`, ` 1`, 20 digits → 400). Local until the shared pipe of src/common lands.
 */
export function parseStrictId(value: unknown): number {
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value) || Number(value) > MAX_INT4) {
    throw new BadRequestException('id must be a decimal integer between 0 and 2147483647');
  }
  return Number(value);
}

/**
 * `@StrictIdParam('id') id: number`: the raw path parameter through {@link parseStrictId}. A custom
 * parameter decorator, so the global ValidationPipe never coerces the string first (its `transform`
 * would turn `0x10` into 16 before any pipe of ours saw it).
 */
export const StrictIdParam = createParamDecorator((name: string, ctx: ExecutionContext): number =>
  parseStrictId(ctx.switchToHttp().getRequest<{ params: Record<string, unknown> }>().params[name]),
);
