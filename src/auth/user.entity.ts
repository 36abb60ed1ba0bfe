import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { UserRole } from '../common/contracts';

@Entity('users')
export class UserEntity {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'varchar', length: 254 })
  email!: string;

  @Column({ name: 'password_hash', type: 'varchar', length: 255, select: false })
  passwordHash!: string;

  @Column({ type: 'varchar', length: 16, default: 'user' })
  role!: UserRole;

  @Column({ name: 'is_premium', type: 'boolean', default: false })
  isPremium!: boolean;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}

/** The public `user` of CONTRACT §3. */
export interface UserView {
  id: number;
  email: string;
  role: UserRole;
  isPremium: boolean;
  createdAt: string;
}

export const toUserView = (u: UserEntity): UserView => ({
  id: u.id,
  email: u.email,
  role: u.role,
  isPremium: u.isPremium,
  createdAt: u.createdAt.toISOString(),
});
