import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';

const MAX_INT4 = 2_147_483_647;

/**
 * A path id checked by {@link StrictIdPipe}. Being an intersection type, its design-time metadata is
 * `Object`, so the global ValidationPipe does not coerce the raw string first (it would turn `0x10`
 * into 16).
 */
export type StrictId = number & { readonly __strictId?: never };

/**
 * `:id` as CONTRACT §3 wants it: a decimal integer within PostgreSQL's `integer` range, nothing else
 * (`0x10`, `1e1`, `-1`, `+1`, ` 1`, 20 digits → 400). Local until the shared pipe of src/common lands.
 */
@Injectable()
export class StrictIdPipe implements PipeTransform<unknown, StrictId> {
  transform(value: unknown): StrictId {
    if (typeof value !== 'string' || !/^\d{1,10}$/.test(value) || Number(value) > MAX_INT4) {
      throw new BadRequestException('id must be a decimal integer between 0 and 2147483647');
    }
    return Number(value);
  }
}
