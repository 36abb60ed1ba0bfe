import { Inject, Injectable, UnauthorizedException } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { JwtService } from '@nestjs/jwt';
import { createSecretKey, KeyObject } from 'node:crypto';
import * as jsonwebtoken from 'jsonwebtoken';
import { authConfig } from '../config/configuration';
import type { JwtClaims } from './auth-user';
import { IssuedRefresh, SessionsService } from './sessions.service';
import { toUserView, UserEntity, UserView } from './user.entity';
import { UsersService } from './users.service';

const MAX_REMEMBERED_TOKENS = 20_000;
const VERIFY_OPTIONS: jsonwebtoken.VerifyOptions = { algorithms: ['HS256'] };

/** Access and refresh token of a session (register, login, refresh). */
export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  /** Seconds until `accessToken` expires. */
  expiresIn: number;
}

@Injectable()
export class AuthService {
  /**
   * The secret as a KeyObject: given a string, jsonwebtoken first tries `createPublicKey` on it and
   * catches the throw, on every verify (about a sixth of the api's CPU under load).
   */
  private readonly key: KeyObject;
  private readonly verified = new Map<string, { claims: JwtClaims & { exp?: number }; expiresAt: number }>();
  private readonly accessTtlS: number;

  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly jwt: JwtService,
    @Inject(authConfig.KEY) cfg: ConfigType<typeof authConfig>,
  ) {
    this.key = createSecretKey(Buffer.from(cfg.jwtSecret, 'utf8'));
    this.accessTtlS = cfg.accessTokenTtlSeconds;
  }

  async register(
    email: string,
    password: string,
    userAgent: string | null,
  ): Promise<{ user: UserView } & TokenPair> {
    const user = await this.users.create(email, password);
    return { user: toUserView(user), ...(await this.startSession(user, userAgent)) };
  }

  async login(
    email: string,
    password: string,
    userAgent: string | null,
  ): Promise<{ user: UserView } & TokenPair> {
    const user = await this.users.findByEmailWithHash(email);
    // Same answer for an unknown email and a wrong password.
    if (!user || !(await this.users.verifyPassword(user, password))) {
      throw new UnauthorizedException('invalid email or password');
    }
    return { user: toUserView(user), ...(await this.startSession(user, userAgent)) };
  }

  /** Rotation: a new pair for a live refresh token; 401 otherwise (a reused token has ended its session). */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const outcome = await this.sessions.rotate(refreshToken);
    if (!outcome.ok) throw new UnauthorizedException('invalid, expired or ended refresh token');
    const user = await this.users.findById(outcome.issued.userId);
    if (!user) throw new UnauthorizedException('invalid, expired or ended refresh token');
    return this.pair(user, outcome.issued);
  }

  /** Ends the session of `refreshToken`; nothing for an unknown one. */
  logout(refreshToken: string): Promise<void> {
    return this.sessions.endByRefreshToken(refreshToken);
  }

  /** 401 for a wrong current password; otherwise the new password, and every other session ends. */
  async changePassword(
    userId: number,
    sessionId: number,
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const user = await this.users.findByIdWithHash(userId);
    if (!user || !(await this.users.verifyPassword(user, currentPassword))) {
      throw new UnauthorizedException('the current password is wrong');
    }
    await this.users.changePassword(userId, newPassword, sessionId);
  }

  private async startSession(user: UserEntity, userAgent: string | null): Promise<TokenPair> {
    return this.pair(user, await this.sessions.start(user.id, userAgent));
  }

  /** An access token of the session, never outliving it, and the session's refresh token. */
  private async pair(user: UserEntity, issued: IssuedRefresh): Promise<TokenPair> {
    const left = Math.floor((issued.expiresAt.getTime() - Date.now()) / 1000);
    const expiresIn = Math.max(1, Math.min(this.accessTtlS, left));
    const claims: JwtClaims = { sub: user.id, email: user.email, role: user.role, sid: issued.sessionId };
    const accessToken = await this.jwt.signAsync(claims, { expiresIn });
    return { accessToken, refreshToken: issued.refreshToken, expiresIn };
  }

  /**
   * Verified claims, or null when the token is missing, malformed, expired or badly signed. A token
   * that verified is remembered (keyed by its whole text, signature included) until it expires, so a
   * client repeating its token costs a map lookup instead of an HMAC and two base64+JSON decodes.
   * Whether its session is still live is the Authenticator's check, not this one.
   */
  verifySync(token: string): (JwtClaims & { exp?: number }) | null {
    const now = Date.now();
    const hit = this.verified.get(token);
    if (hit) {
      if (hit.expiresAt > now) return hit.claims;
      this.verified.delete(token);
    }
    try {
      const claims = jsonwebtoken.verify(token, this.key, VERIFY_OPTIONS) as unknown as JwtClaims & {
        exp?: number;
      };
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
}
