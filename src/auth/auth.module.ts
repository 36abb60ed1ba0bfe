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
import { ImagesModule } from '../images/images.module';

/**
 * Accounts, JWT and the one global guard (authentication, roles, the shared Redis rate limit and the
 * cross-process user cache: see AuthGuard, AuthGate). The throttler module only provides the Redis
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
        signOptions: { algorithm: 'HS256', expiresIn: cfg.jwtExpiresIn as never },
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
  controllers: [AuthController, AdminUsersController],
  providers: [UsersService, AuthService, AdminSeeder, AuthGate, { provide: APP_GUARD, useClass: AuthGuard }],
  exports: [AuthService, UsersService, AuthGate],
})
export class AuthModule {}
