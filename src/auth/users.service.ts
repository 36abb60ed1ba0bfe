import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { QueryFailedError, Repository } from 'typeorm';
import * as bcrypt from 'bcryptjs';
import type { UserRole } from '../common/contracts';
import type { ProjectRoles } from '../common/project-roles';
import { PreparedQueries } from '../database/prepared-queries';
import { AuthGate } from './auth-gate';
import { CredentialEvents } from './credential-events';
import { UserEntity } from './user.entity';
import type { Principal } from './auth-user';

const BCRYPT_ROUNDS = 10;

interface UserRow {
  id: number;
  email: string;
  role: UserRole;
  is_premium: boolean;
  projects: ProjectRoles;
  created_at: Date;
  updated_at: Date;
}

/**
 * Accounts. Every change of a user (role, premium, password of the seeded admin, deletion) is
 * followed by a version bump in Redis (`AuthGate.bumpUser`), which makes every api process reload
 * that user on its next request.
 */
/** A user row without its password hash, with its project roles. */
export type AccountRow = UserEntity & { projects?: ProjectRoles };

const SELECT_ACCOUNT = `SELECT id, email, role, is_premium, created_at, updated_at,
       (SELECT COALESCE(json_object_agg(m.project_id, m.role), '{}'::json) FROM project_members m
          JOIN projects p ON p.id = m.project_id AND p.deleting_at IS NULL WHERE m.user_id = users.id) AS projects`;

const toAccount = (r: UserRow): AccountRow =>
  Object.assign(new UserEntity(), {
    id: r.id,
    email: r.email,
    role: r.role,
    isPremium: r.is_premium,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    projects: r.projects,
  });

@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(UserEntity) private readonly users: Repository<UserEntity>,
    private readonly prepared: PreparedQueries,
    private readonly gate: AuthGate,
    private readonly events: CredentialEvents,
  ) {}

  /**
   * The user without its password hash, with its project roles (a prepared statement; the roles are
   * cached with the row, see AccessPolicy).
   */
  async findById(id: number): Promise<AccountRow | null> {
    const rows = await this.prepared.rows<UserRow>(`${SELECT_ACCOUNT} FROM users WHERE id = $1`, [id]);
    return rows[0] ? toAccount(rows[0]) : null;
  }

  /**
   * The auth guard's cache miss: the user (as {@link findById}) and whether `principal` (its session or
   * API key) is live, in ONE statement — one pool connection per request, so a request never holds one
   * connection while it waits for a second (with every connection taken, two reads at once per request
   * could leave requests that already hold a connection stuck behind those waiting for one).
   */
  async findLive(id: number, principal: Principal): Promise<{ user: AccountRow; live: boolean } | null> {
    const rows = await this.prepared.rows<UserRow & { live: boolean }>(
      principal.kind === 'session'
        ? `${SELECT_ACCOUNT}, EXISTS (SELECT 1 FROM sessions s WHERE s.id = $2 AND s.user_id = users.id AND s.expires_at > now()) AS live
             FROM users WHERE id = $1`
        : `${SELECT_ACCOUNT}, EXISTS (SELECT 1 FROM api_keys k WHERE k.id = $2 AND k.user_id = users.id
                                       AND (k.expires_at IS NULL OR k.expires_at > now())) AS live
             FROM users WHERE id = $1`,
      [id, principal.id],
    );
    return rows[0] ? { user: toAccount(rows[0]), live: rows[0].live } : null;
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

  /**
   * Sets a new password and ends every other session of the user (all of them when `keepSessionId` is
   * null), in one statement; then every process re-checks the user's sessions (version bump).
   */
  async changePassword(id: number, newPassword: string, keepSessionId: number | null): Promise<void> {
    const passwordHash = await bcrypt.hash(newPassword, BCRYPT_ROUNDS);
    const ended = await this.prepared.rows<{ id: number }>(
      `WITH u AS (UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 RETURNING id)
       DELETE FROM sessions WHERE user_id IN (SELECT id FROM u) AND id IS DISTINCT FROM $3::int RETURNING id`,
      [id, passwordHash, keepSessionId],
    );
    await this.gate.bumpUser(id);
    this.events.ended({ sessions: ended.map((r) => r.id) });
  }

  /** With the password hash, for checking the current password. */
  findByIdWithHash(id: number): Promise<UserEntity | null> {
    return this.users
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('u.id = :id', { id })
      .getOne();
  }

  async update(id: number, patch: { isPremium?: boolean; role?: UserRole }): Promise<UserEntity> {
    const user = await this.findById(id);
    if (!user) throw new NotFoundException('user not found');
    if (patch.isPremium !== undefined) user.isPremium = patch.isPremium;
    if (patch.role !== undefined) user.role = patch.role;
    const saved = await this.users.save(user);
    await this.gate.bumpUser(id);
    return saved;
  }

  /** Deletes a user (its images, tasks and results go with it by cascade). False when there was none. */
  async remove(id: number): Promise<boolean> {
    // Its sessions and keys go by cascade: returned first, so that their sockets can be disconnected.
    const [row] = await this.prepared.rows<{ sessions: number[] | null; keys: number[] | null }>(
      `SELECT (SELECT array_agg(id) FROM sessions WHERE user_id = $1) AS sessions,
              (SELECT array_agg(id) FROM api_keys WHERE user_id = $1) AS keys`,
      [id],
    );
    const res = await this.users.delete({ id });
    await this.gate.bumpUser(id);
    this.events.ended({ sessions: row?.sessions ?? [], apiKeys: row?.keys ?? [] });
    return (res.affected ?? 0) > 0;
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
      await this.users.save(existing);
      // A new password ends the admin's sessions, as a password change through the API would.
      if (!passwordOk) await this.changePassword(existing.id, password, null);
      else await this.gate.bumpUser(existing.id);
    }
  }
}
