import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { AuthUser } from './auth-user';

/**
 * RATE_LIMIT_PER_MINUTE per user (per IP when anonymous) across all routes, counted in Redis so all
 * processes share it. (The throttler's default key is per route; the contract limits per user.)
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override async getTracker(req: { user?: AuthUser; ip?: string }): Promise<string> {
    return req.user ? `user:${req.user.id}` : `ip:${req.ip ?? 'unknown'}`;
  }

  protected override generateKey(_context: ExecutionContext, tracker: string, name: string): string {
    return `${name}:${tracker}`;
  }
}
