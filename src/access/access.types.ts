import type { Permission } from '../common/project-roles';

/**
 * What a route touches and what it needs on it (CONTRACT §3 "Projects and sharing"). Every route of
 * the API declares one of: `@Access(...)` (the rule below, enforced by AccessGuard), `@OwnOnly()` (it
 * only reads or writes the caller's own things: their personal images, their tasks, their projects
 * list), `@Public()` or `@Roles('admin')`. test/integration/projects/route-rules walks every
 * registered route and fails for one that declares none.
 *
 * - `image`: the image of the path parameter (`:id`);
 * - `task`: the task of `:taskId` (its image decides);
 * - `project`: a project id from the path, the query or the body;
 * - `images`: a list of image ids from the query (comma list) or the body (array); every one decides.
 *
 * `optional`: an absent value (or `null` in a body) skips the rule (e.g. `?projectId=` of the task
 * list, or `projectId: null` of an image move = the caller's personal images).
 */
export type AccessRule =
  | { on: 'image' | 'task'; param: string; need: Permission; link?: boolean }
  | { on: 'project'; from: 'param' | 'query' | 'body'; key: string; need: Permission; optional?: boolean }
  | { on: 'images'; from: 'query' | 'body'; key: string; need: Permission; optional?: boolean; max?: number };

export type AccessKind = AccessRule['on'];
export const ACCESS_RULES_KEY = 'accessRules';
export const OWN_ONLY_KEY = 'ownOnly';
