import { DynamicModule, Module, ModuleMetadata } from '@nestjs/common';
import type { AppRole } from '../config/app-role';
import { AuthModule } from '../auth/auth.module';
import { MlModule } from '../ml/ml.module';
import { EventsGateway } from './events.gateway';
import { RealtimePublisher } from './realtime.publisher';

export interface RealtimeModuleOptions {
  /**
   * Modules that export the `ML_STATUS_READER` provider the gateway reads on connect. Defaults to
   * `[MlModule]`; tests pass a module exporting a fake. Ignored for `worker` (no gateway).
   */
  statusImports?: ModuleMetadata['imports'];
  /**
   * Modules that export the `SOCKET_AUTHENTICATOR` provider the gateway checks handshakes with.
   * Defaults to `[AuthModule]`; tests pass a module exporting a fake. Ignored for `worker`.
   */
  authImports?: ModuleMetadata['imports'];
}

/**
 * Socket.IO events (CONTRACT §6).
 *
 * Every role gets `RealtimePublisher` (exported): workers and api processes alike publish through
 * Redis. Roles that serve clients (`api`, `all`) also get `EventsGateway`, which needs the global
 * configuration and RedisModule, plus `ML_STATUS_READER` (from MlModule by default) and
 * `SOCKET_AUTHENTICATOR` (from AuthModule by default). The
 * application must install the Redis Socket.IO adapter with `useRealtimeAdapter(app)` before listening.
 *
 * `forRole(role)` returns the same module object for the same role, so importing it from several
 * modules (app, segmentation, ...) yields one publisher and one gateway.
 */
@Module({})
export class RealtimeModule {
  private static readonly byRole = new Map<AppRole, DynamicModule>();

  static forRole(role: AppRole, options?: RealtimeModuleOptions): DynamicModule {
    if (options) return RealtimeModule.build(role, options);
    let mod = RealtimeModule.byRole.get(role);
    if (!mod) {
      mod = RealtimeModule.build(role, {});
      RealtimeModule.byRole.set(role, mod);
    }
    return mod;
  }

  private static build(role: AppRole, options: RealtimeModuleOptions): DynamicModule {
    const serves = role === 'api' || role === 'all';
    if (!serves) {
      return { module: RealtimeModule, providers: [RealtimePublisher], exports: [RealtimePublisher] };
    }
    return {
      module: RealtimeModule,
      imports: [...(options.authImports ?? [AuthModule]), ...(options.statusImports ?? [MlModule])],
      providers: [RealtimePublisher, EventsGateway],
      exports: [RealtimePublisher],
    };
  }
}
