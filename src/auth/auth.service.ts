import { Injectable, UnauthorizedException } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import type { JwtClaims } from './auth-user';
import { toUserView, UserEntity, UserView } from './user.entity';
import { UsersService } from './users.service';

@Injectable()
export class AuthService {
  constructor(
    private readonly users: UsersService,
    private readonly jwt: JwtService,
  ) {}

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
  async verify(token: string): Promise<JwtClaims | null> {
    try {
      const claims = await this.jwt.verifyAsync<JwtClaims>(token, { algorithms: ['HS256'] });
      return typeof claims.sub === 'number' ? claims : null;
    } catch {
      return null;
    }
  }
}
