import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { QueryFailedError, Repository } from 'typeorm';
import * as bcrypt from 'bcryptjs';
import type { UserRole } from '../common/contracts';
import { UserEntity } from './user.entity';

const BCRYPT_ROUNDS = 10;

@Injectable()
export class UsersService {
  constructor(@InjectRepository(UserEntity) private readonly users: Repository<UserEntity>) {}

  findById(id: number): Promise<UserEntity | null> {
    return this.users.findOneBy({ id });
  }

  /** With the password hash, for login only. */
  findByEmailWithHash(email: string): Promise<UserEntity | null> {
    return this.users
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('lower(u.email) = lower(:email)', { email })
      .getOne();
  }

  async create(email: string, password: string, role: UserRole = 'user'): Promise<UserEntity> {
    const passwordHash = await bcrypt.hash(password, BCRYPT_ROUNDS);
    try {
      return await this.users.save(this.users.create({ email, passwordHash, role, isPremium: false }));
    } catch (err) {
      if (err instanceof QueryFailedError && (err as { code?: string }).code === '23505') {
        throw new ConflictException('email is already registered');
      }
      throw err;
    }
  }

  verifyPassword(user: UserEntity, password: string): Promise<boolean> {
    return bcrypt.compare(password, user.passwordHash);
  }

  async update(id: number, patch: { isPremium?: boolean; role?: UserRole }): Promise<UserEntity> {
    const user = await this.findById(id);
    if (!user) throw new NotFoundException('user not found');
    if (patch.isPremium !== undefined) user.isPremium = patch.isPremium;
    if (patch.role !== undefined) user.role = patch.role;
    return this.users.save(user);
  }

  /** Makes sure the configured admin exists, is an admin and has the configured password. */
  async ensureAdmin(email: string, password: string): Promise<void> {
    const existing = await this.findByEmailWithHash(email);
    if (!existing) {
      try {
        await this.create(email.toLowerCase(), password, 'admin');
      } catch (err) {
        if (!(err instanceof ConflictException)) throw err; // another process created it meanwhile
      }
      return;
    }
    const passwordOk = await this.verifyPassword(existing, password);
    if (existing.role !== 'admin' || !passwordOk) {
      existing.role = 'admin';
      if (!passwordOk) existing.passwordHash = await bcrypt.hash(password, BCRYPT_ROUNDS);
      await this.users.save(existing);
    }
  }
}
