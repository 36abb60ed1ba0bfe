import { Global, Module } from '@nestjs/common';
import { AccessGuard } from './access.guard';
import { AccessPolicy } from './access.policy';

/**
 * The one authorization rule of images, tasks, results, file variants, exports and projects
 * (AccessPolicy) and the guard that applies a route's `@Access(...)` rules. Global: the modules that
 * own the resources register their loaders (images, tasks) with AccessPolicy.
 */
@Global()
@Module({
  providers: [AccessPolicy, AccessGuard],
  exports: [AccessPolicy, AccessGuard],
})
export class AccessModule {}
