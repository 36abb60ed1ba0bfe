import { ForbiddenException, Injectable, NotFoundException } from '@nestjs/common';
import type { AuthUser } from '../auth/auth-user';
import { Permission, ProjectRole, roleAllows } from '../common/project-roles';

/** Who decides over a resource: its project, or (a personal image) its uploader. */
export interface AccessSubject {
  /** The image's uploader (for a task: its image's). */
  ownerId: number;
  /** The image's project; null for a personal image. */
  projectId: number | null;
}

/** A resource found by a loader: whose it is and the entity the route then works with. */
export interface Loaded<T = unknown> {
  subject: AccessSubject;
  entity: T;
}

export type Verdict = 'ok' | 'hidden' | 'forbidden';

/** Loads one resource by id (null: there is none). Registered by the module that owns the resource. */
export type OneLoader = (id: number | string) => Promise<Loaded | null>;
/** Loads several images by id (missing ones absent from the map). */
export type ManyLoader = (ids: number[]) => Promise<Map<number, AccessSubject>>;

/**
 * THE authorization rule of every image, task, result, file variant, export and project route
 * (CONTRACT §3 "Projects and sharing"): the caller's role on the project decides (viewer < editor <
 * owner); a personal image is its uploader's alone. A stranger gets 404, the same answer as a missing
 * id; a member whose role is too low 403.
 *
 * The caller's roles come with the user row the auth guard caches per process (`AuthUser.projects`),
 * and every membership change bumps the member's user version, so every process sees it on the next
 * request without a database read of its own. Resources are read by loaders the owning modules
 * register (images, tasks), the read each route made before anyway.
 */
@Injectable()
export class AccessPolicy {
  private readonly one = new Map<'image' | 'task', OneLoader>();
  private many?: ManyLoader;

  registerLoader(kind: 'image' | 'task', loader: OneLoader): void {
    this.one.set(kind, loader);
  }

  registerImagesLoader(loader: ManyLoader): void {
    this.many = loader;
  }

  loader(kind: 'image' | 'task'): OneLoader {
    const l = this.one.get(kind);
    if (!l) throw new Error(`no access loader registered for ${kind}`);
    return l;
  }

  imagesLoader(): ManyLoader {
    if (!this.many) throw new Error('no access loader registered for images');
    return this.many;
  }

  /** The caller's role on a project (undefined: not a member, or no such project). */
  roleOn(user: AuthUser, projectId: number): ProjectRole | undefined {
    return user.projects?.[projectId];
  }

  decide(user: AuthUser, s: AccessSubject, need: Permission): Verdict {
    if (s.projectId === null) return s.ownerId === user.id ? 'ok' : 'hidden';
    const role = this.roleOn(user, s.projectId);
    if (!role) return 'hidden';
    return roleAllows(role, need) ? 'ok' : 'forbidden';
  }

  /** Throws the contract's answer for a verdict that is not `ok`. */
  enforce(verdict: Verdict, what: string, need: Permission): void {
    if (verdict === 'hidden') throw new NotFoundException(`${what} not found`);
    if (verdict === 'forbidden')
      throw new ForbiddenException(`your role in this project does not allow this (needs ${ROLE_FOR[need]})`);
  }

  /** The ids of the projects where the caller may do `need`. */
  projectsAllowing(user: AuthUser, need: Permission): number[] {
    return Object.entries(user.projects ?? {})
      .filter(([, role]) => roleAllows(role, need))
      .map(([id]) => Number(id));
  }
}

const ROLE_FOR: Record<Permission, ProjectRole> = { view: 'viewer', edit: 'editor', manage: 'owner' };
