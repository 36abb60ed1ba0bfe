import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiOperation, ApiProperty, ApiResponse, getSchemaPath } from '@nestjs/swagger';

/** The contract's error body (CONTRACT §3), documented once and referenced by every error response. */
export class ErrorBody {
  @ApiProperty({ type: 'integer', example: 400 }) statusCode!: number;
  @ApiProperty({ example: 'Bad Request' }) error!: string;
  @ApiProperty({
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
    description: 'what is wrong; for validation errors one string per problem, naming the field',
  })
  message!: string | string[];
}

const DEFAULT_ERROR_TEXT: Record<number, string> = {
  400: 'invalid input (names the field): malformed id, query or body, null in an optional field, JSON nested deeper than 32',
  401: 'no or invalid Bearer token',
  403: 'the caller lacks the role (admin only)',
  404: 'not found, or not the caller’s',
  409: 'conflict with the current state',
  413: 'payload too large',
  415: 'unsupported media type',
  422: 'the ML service rejected the image',
  429: 'rate limit or pending-task limit exceeded',
  502: 'the ML call failed',
  503: 'a dependency is unavailable; retry after the Retry-After header',
};

/**
 * One operation's documentation: a summary and its error responses, each with the ErrorBody schema.
 * `errors` maps a status to its description (`true` → the default text).
 */
export function ApiDoc(summary: string, errors: Record<number, string | true> = {}, description?: string): MethodDecorator & ClassDecorator {
  return applyDecorators(ApiOperation({ summary, description }), ApiErrors(errors));
}

/**
 * Error responses only, each `application/json` with the ErrorBody schema — also on routes whose
 * success is not JSON (files, images, CSV), where `@ApiProduces` would otherwise list the error
 * under the success's media types.
 */
export function ApiErrors(errors: Record<number, string | true>): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ErrorBody),
    ...Object.entries(errors).map(([status, text]) =>
      ApiResponse({
        status: Number(status),
        description: text === true ? DEFAULT_ERROR_TEXT[Number(status)] : text,
        content: { 'application/json': { schema: { $ref: getSchemaPath(ErrorBody) } } },
      }),
    ),
  );
}

/** Errors every authenticated route can answer. */
export const AUTHED = { 401: true, 429: true, 503: true } as const;
