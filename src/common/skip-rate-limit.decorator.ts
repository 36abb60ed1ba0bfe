import { SkipThrottle } from '@nestjs/throttler';

/** Health and metrics are never rate limited (CONTRACT §3). */
export const SkipRateLimit = () => SkipThrottle({ default: true });
