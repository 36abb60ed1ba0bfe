/** Roles of a project member (CONTRACT §3 "Projects and sharing"), weakest first. */
export const PROJECT_ROLES = ['viewer', 'editor', 'owner'] as const;
export type ProjectRole = (typeof PROJECT_ROLES)[number];
/** Roles an invitation or a role change may give (the owner is the creator, and only one). */
export const MEMBER_ROLES = ['editor', 'viewer'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];

/** What an operation needs on a project: `view` (viewer), `edit` (editor), `manage` (owner). */
export type Permission = 'view' | 'edit' | 'manage';
const NEEDS: Record<Permission, number> = { view: 0, edit: 1, manage: 2 };

/** The caller's projects and roles: `{ projectId: role }`, loaded with the user row (auth guard cache). */
export type ProjectRoles = Readonly<Record<number, ProjectRole>>;

export const roleAllows = (role: ProjectRole, need: Permission): boolean =>
  PROJECT_ROLES.indexOf(role) >= NEEDS[need];
