import {
  BadRequestException,
  ConflictException,
  Injectable,
  Logger,
  NotFoundException,
} from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, QueryFailedError } from 'typeorm';
import type { AuthUser } from '../auth/auth-user';
import { AuthGate } from '../auth/auth-gate';
import { AccessPolicy } from '../access';
import type { MemberRole, ProjectRole } from '../common/project-roles';
import { RealtimePublisher } from '../realtime/realtime.publisher';
import { ProjectSweeper } from './project-sweeper';

export interface ProjectView {
  id: number;
  name: string;
  description: string;
  role: ProjectRole;
  owner: { id: number; email: string };
  imageCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface MemberView {
  id: number;
  email: string;
  userId: number | null;
  role: ProjectRole;
  pending: boolean;
  createdAt: string;
}

interface ProjectRow {
  id: number;
  name: string;
  description: string;
  role: ProjectRole;
  owner_id: number;
  owner_email: string;
  image_count: number;
  created_at: Date;
  updated_at: Date;
}

interface MemberRow {
  id: number;
  email: string;
  user_id: number | null;
  role: ProjectRole;
  created_at: Date;
}

/** A project as the caller sees it (`$1` the caller, live projects only). */
const PROJECT_SELECT = `
  SELECT p.id, p.name, p.description, m.role, p.owner_id, o.email AS owner_email, p.created_at, p.updated_at,
         (SELECT count(*)::int FROM images i WHERE i.project_id = p.id) AS image_count
    FROM projects p
    JOIN project_members m ON m.project_id = p.id AND m.user_id = $1
    JOIN users o ON o.id = p.owner_id
   WHERE p.deleting_at IS NULL`;

const toProjectView = (r: ProjectRow): ProjectView => ({
  id: r.id,
  name: r.name,
  description: r.description,
  role: r.role,
  owner: { id: r.owner_id, email: r.owner_email },
  imageCount: Number(r.image_count),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const toMemberView = (r: MemberRow): MemberView => ({
  id: r.id,
  email: r.email,
  userId: r.user_id,
  role: r.role,
  pending: r.user_id === null,
  createdAt: r.created_at.toISOString(),
});

/**
 * Projects and their members (CONTRACT §3 "Projects and sharing"). The routes' access rules
 * (AccessPolicy) have already decided whether the caller may act; this service writes and, after
 * every change of a membership (add, role, removal, project create and delete), bumps the user
 * version of each member concerned so every api process reloads their roles on the next request,
 * and takes removed members' sockets out of the project's room.
 */
@Injectable()
export class ProjectsService {
  private readonly logger = new Logger(ProjectsService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly gate: AuthGate,
    private readonly access: AccessPolicy,
    private readonly realtime: RealtimePublisher,
    private readonly sweeper: ProjectSweeper,
  ) {}

  async create(user: AuthUser, name: string, description = ''): Promise<ProjectView> {
    const rows = (await this.db.query(
      `WITH p AS (INSERT INTO projects (name, description, owner_id) VALUES ($1, $2, $3) RETURNING id),
            m AS (INSERT INTO project_members (project_id, user_id, email, role)
                  SELECT p.id, u.id, u.email, 'owner' FROM p, users u WHERE u.id = $3 RETURNING project_id)
       SELECT project_id AS id FROM m`,
      [name, description, user.id],
    )) as Array<{ id: number }>;
    if (!rows.length) throw new NotFoundException('user not found');
    await this.gate.bumpUser(user.id);
    return this.get(user, rows[0].id);
  }

  async list(
    user: AuthUser,
    page: number,
    limit: number,
  ): Promise<{ items: ProjectView[]; total: number; page: number; limit: number }> {
    const rows = (await this.db.query(
      `${PROJECT_SELECT} ORDER BY p.updated_at DESC, p.id DESC LIMIT $2 OFFSET $3`,
      [user.id, limit, (page - 1) * limit],
    )) as ProjectRow[];
    const [{ total }] = (await this.db.query(
      `SELECT count(*)::int AS total FROM projects p JOIN project_members m ON m.project_id = p.id AND m.user_id = $1 WHERE p.deleting_at IS NULL`,
      [user.id],
    )) as Array<{ total: number }>;
    return { items: rows.map(toProjectView), total, page, limit };
  }

  async get(user: AuthUser, id: number): Promise<ProjectView> {
    const rows = (await this.db.query(`${PROJECT_SELECT} AND p.id = $2`, [user.id, id])) as ProjectRow[];
    if (!rows.length) throw new NotFoundException('project not found');
    return toProjectView(rows[0]);
  }

  async update(
    user: AuthUser,
    id: number,
    patch: { name?: string; description?: string },
  ): Promise<ProjectView> {
    const rows = (await this.db.query(
      `UPDATE projects SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = now()
        WHERE id = $1 AND deleting_at IS NULL RETURNING id`,
      [id, patch.name ?? null, patch.description ?? null],
    )) as [Array<{ id: number }>, number];
    if (!rows[0].length) throw new NotFoundException('project not found');
    return this.get(user, id);
  }

  /**
   * Marks the project `deleting` in one statement (it vanishes for every member at once: their roles
   * are reloaded without it), then the sweeper removes its images in batches and finally the row.
   */
  async remove(id: number): Promise<void> {
    const rows = (await this.db.query(
      `WITH p AS (UPDATE projects SET deleting_at = now() WHERE id = $1 AND deleting_at IS NULL RETURNING id)
       SELECT m.user_id FROM project_members m JOIN p ON p.id = m.project_id WHERE m.user_id IS NOT NULL`,
      [id],
    )) as Array<{ user_id: number }>;
    await Promise.all(rows.map((r) => this.gate.bumpUser(r.user_id)));
    this.realtime.leaveProject(id);
    this.sweeper.kick();
  }

  async members(id: number): Promise<{ items: MemberView[] }> {
    const rows = (await this.db.query(
      `SELECT id, email, user_id, role, created_at FROM project_members WHERE project_id = $1
        ORDER BY (role = 'owner') DESC, created_at, id`,
      [id],
    )) as MemberRow[];
    return { items: rows.map(toMemberView) };
  }

  /**
   * Adds a member by address: active when an account has it, pending otherwise (the same answer and
   * status either way, only `pending`/`userId` differ). 409 when the address is already a member.
   */
  async addMember(id: number, email: string, role: MemberRole): Promise<MemberView> {
    let rows: MemberRow[];
    try {
      rows = (await this.db.query(
        `WITH p AS (UPDATE projects SET updated_at = now() WHERE id = $1 AND deleting_at IS NULL RETURNING id)
         INSERT INTO project_members (project_id, user_id, email, role)
         SELECT p.id, (SELECT u.id FROM users u WHERE lower(u.email) = lower($2)), $2, $3 FROM p
         RETURNING id, email, user_id, role, created_at`,
        [id, email, role],
      )) as MemberRow[];
    } catch (err) {
      if (err instanceof QueryFailedError && (err as { code?: string }).code === '23505') {
        throw new ConflictException('this address is already a member of the project');
      }
      throw err;
    }
    if (!rows.length) throw new NotFoundException('project not found');
    if (rows[0].user_id !== null) await this.gate.bumpUser(rows[0].user_id);
    return toMemberView(rows[0]);
  }

  async updateMember(id: number, memberId: number, role: MemberRole): Promise<MemberView> {
    const member = await this.member(id, memberId);
    if (member.role === 'owner') throw new BadRequestException('the owner’s own entry cannot be changed');
    const rows = (await this.db.query(
      `UPDATE project_members SET role = $3 WHERE project_id = $1 AND id = $2 AND role <> 'owner'
        RETURNING id, email, user_id, role, created_at`,
      [id, memberId, role],
    )) as [MemberRow[], number];
    if (!rows[0].length) throw new NotFoundException('member not found');
    await this.touch(id);
    if (member.user_id !== null) await this.gate.bumpUser(member.user_id);
    return toMemberView(rows[0][0]);
  }

  /** The owner removes anybody but themself; any other member may remove their own membership. */
  async removeMember(user: AuthUser, id: number, memberId: number): Promise<void> {
    const member = await this.member(id, memberId);
    if (member.user_id !== user.id)
      this.access.enforce(
        this.access.decide(user, { ownerId: 0, projectId: id }, 'manage'),
        'member',
        'manage',
      );
    if (member.role === 'owner') throw new BadRequestException('the owner’s own entry cannot be removed');
    await this.db.query(`DELETE FROM project_members WHERE project_id = $1 AND id = $2 AND role <> 'owner'`, [
      id,
      memberId,
    ]);
    await this.touch(id);
    if (member.user_id !== null) {
      await this.gate.bumpUser(member.user_id);
      this.realtime.leaveProject(id, member.user_id);
    }
  }

  private async member(id: number, memberId: number): Promise<MemberRow> {
    const rows = (await this.db.query(
      `SELECT id, email, user_id, role, created_at FROM project_members WHERE project_id = $1 AND id = $2`,
      [id, memberId],
    )) as MemberRow[];
    if (!rows.length) throw new NotFoundException('member not found');
    return rows[0];
  }

  private async touch(id: number): Promise<void> {
    await this.db
      .query('UPDATE projects SET updated_at = now() WHERE id = $1', [id])
      .catch((err: Error) =>
        this.logger.warn({ projectId: id, err: err.message }, 'project updated_at not set'),
      );
  }
}
