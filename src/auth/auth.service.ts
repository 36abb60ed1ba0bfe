import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { JwtService } from '@nestjs/jwt';
import { createSecretKey, KeyObject } from 'node:crypto';
import * as jsonwebtoken from 'jsonwebtoken';
import { authConfig } from '../config/configuration';
import type { JwtClaims } from './auth-user';
import { toUserView, UserEntity, UserView } from './user.entity';
import { UsersService } from './users.service';

const MAX_REMEMBERED_TOKENS = 20_000;
const VERIFY_OPTIONS: jsonwebtoken.VerifyOptions = { algorithms: ['HS256'] };

@Injectable()
export class AuthService {
  /**
   * The secret as a KeyObject: given a string, jsonwebtoken first tries `createPublicKey` on it and
   * catches the throw, on every verify (about a sixth of the api's CPU under load).
   */
  private readonly key: KeyObject;
  private readonly verified = new Map<string, { claims: JwtClaims; expiresAt: number }>();

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

  /**
   * Verified claims, or null when the token is missing, malformed, expired or badly signed. A token
   * that verified is remembered (keyed by its whole text, signature included) until it expires, so a
   * client repeating its token costs a map lookup instead of an HMAC and two base64+JSON decodes.
   */
  verifySync(token: string): JwtClaims | null {
    const now = Date.now();
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.expiresAt > now) return hit.claims;
      this.verified.delete(token);
    }
    try {
      const claims = jsonwebtoken.verify(token, this.key, VERIFY_OPTIONS) as unknown as JwtClaims & { exp?: number };
      if (typeof claims !== 'object' || claims === null || typeof claims.sub !== 'number') return null;
      if (typeof claims.exp === 'number') {
        if (this.verified.size >= MAX_REMEMBERED_TOKENS) this.verified.clear();
        this.verified.set(token, { claims, expiresAt: claims.exp * 1000 });
      }
      return claims;
    } catch {
      return null;
    }
  }

  /** As `verifySync` (kept async for callers that await it). */
  async verify(token: string): Promise<JwtClaims | null> {
    return this.verifySync(token);
  }
}
