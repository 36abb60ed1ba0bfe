import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { JwtService } from '@nestjs/jwt';
import { createSecretKey, KeyObject } from 'node:crypto';
import * as jsonwebtoken from 'jsonwebtoken';
import { authConfig } from '../config/configuration';
import type { JwtClaims } from './auth-user';
import { toUserView, UserEntity, UserView } from './user.entity';
import { UsersService } from './users.service';

const VERIFY_OPTIONS: jsonwebtoken.VerifyOptions = { algorithms: ['HS256'] };

@Injectable()
export class AuthService {
  /**
   * The secret as a KeyObject: given a string, jsonwebtoken first tries `createPublicKey` on it and
   * catches the throw, on every verify (about a sixth of the api's CPU under load).
   */
  private readonly key: KeyObject;

  constructor(
    private readonly users: UsersService,
    private readonly jwt: JwtService,
    @Inject(authConfig.KEY) cfg: ConfigType<typeof authConfig>,
  ) {
    this.key = createSecretKey(Buffer.from(cfg.jwtSecret, 'utf8'));
  }

  async register(email: string, password: string): Promise<{ user: UserView; accessToken: string }> {
    const user = await this.users.create(email, password);
    return { user: toUserView(user), accessToken: await this.sign(user) };
  }

  async login(email: string, password: string): Promise<{ user: UserView; accessToken: string }> {
    const user = await this.users.findByEmailWithHash(email);
    // Same answer for an unknown email and a wrong password.
    if (!user || !(await this.users.verifyPassword(user, password))) {
      throw new UnauthorizedException('invalid email or password');
    }
    return { user: toUserView(user), accessToken: await this.sign(user) };
  }

  sign(user: UserEntity): Promise<string> {
    const claims: JwtClaims = { sub: user.id, email: user.email, role: user.role };
    return this.jwt.signAsync(claims);
  }

  /** Verified claims, or null when the token is missing, malformed, expired or badly signed. */
  verifySync(token: string): JwtClaims | null {
    try {
      const claims = jsonwebtoken.verify(token, this.key, VERIFY_OPTIONS) as unknown as JwtClaims;
      return typeof claims === 'object' && claims !== null && typeof claims.sub === 'number' ? claims : null;
    } catch {
      return null;
    }
  }

  /** As `verifySync` (kept async for callers that await it). */
  async verify(token: string): Promise<JwtClaims | null> {
    return this.verifySync(token);
  }
}
