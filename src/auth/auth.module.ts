import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { ConfigType } from '@nestjs/config';
import { JwtModule } from '@nestjs/jwt';
import { ThrottlerModule } from '@nestjs/throttler';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import { TypeOrmModule } from '@nestjs/typeorm';
import { appConfig, authConfig, queueConfig } from '../config/configuration';
import { RedisFactory } from '../redis/redis.factory';
import { AdminUsersController, AuthController } from './auth.controller';
import { AuthGuard } from './auth.guard';
import { AuthService } from './auth.service';
import { AdminSeeder } from './admin-seeder';
import { AuthGate } from './auth-gate';
import { FailOpenThrottlerStorage } from './fail-open.storage';
import { UserEntity } from './user.entity';
import { UsersService } from './users.service';
import { ApiKeysService } from './api-keys.service';
import { Authenticator } from './authenticator';
import { SessionsService } from './sessions.service';
import { ApiKeysController, SessionsController } from './sessions.controller';
import { AuthSocketAuthenticator } from './socket-authenticator';
import { CredentialEvents } from './credential-events';
import { SOCKET_AUTHENTICATOR } from '../realtime/socket-auth';
import { ImagesModule } from '../images/images.module';

/**
 * Accounts, sessions (rotating refresh tokens), API keys, JWT and the one global guard
 * (authentication, roles, the shared Redis rate limit and the cross-process user cache: see AuthGuard,
 * Authenticator, AuthGate). Authenticator is exported for the other places that read credentials (the
 * image variants, the queue dashboard) and SOCKET_AUTHENTICATOR for the Socket.IO gateway. The throttler module only provides the Redis
 * throttler storage the queue board counts its password checks in.
 */
@Module({
  imports: [
    TypeOrmModule.forFeature([UserEntity]),
    ImagesModule,
    JwtModule.registerAsync({
      inject: [authConfig.KEY],
      useFactory: (cfg: ConfigType<typeof authConfig>) => ({
        secret: cfg.jwtSecret,
        signOptions: { algorithm: 'HS256', expiresIn: cfg.accessTokenTtlSeconds },
        verifyOptions: { algorithms: ['HS256'] },
      }),
    }),
    ThrottlerModule.forRootAsync({
      inject: [appConfig.KEY, queueConfig.KEY, RedisFactory],
      useFactory: (
        app: ConfigType<typeof appConfig>,
        q: ConfigType<typeof queueConfig>,
        redis: RedisFactory,
      ) => ({
        throttlers: [{ name: 'default', ttl: 60_000, limit: app.rateLimitPerMinute }],
        storage: new FailOpenThrottlerStorage(
          new ThrottlerStorageRedisService(
            redis.create('rate-limit', {
              keyPrefix: `${q.name}:rl:`,
              maxRetriesPerRequest: 1,
              enableOfflineQueue: false,
            }) as never,
          ),
        ),
      }),
    }),
  ],
  controllers: [AuthController, SessionsController, ApiKeysController, AdminUsersController],
  providers: [
    UsersService,
    AuthService,
    SessionsService,
    ApiKeysService,
    Authenticator,
    CredentialEvents,
    AdminSeeder,
    AuthGate,
    { provide: SOCKET_AUTHENTICATOR, useClass: AuthSocketAuthenticator },
    { provide: APP_GUARD, useClass: AuthGuard },
  ],
  exports: [AuthService, UsersService, Authenticator, SOCKET_AUTHENTICATOR, AuthGate],
})
export class AuthModule {}
