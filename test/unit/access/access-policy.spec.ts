import { ForbiddenException, NotFoundException } from '@nestjs/common';
import { AccessPolicy } from '../../../src/access';
import { parseIdList } from '../../../src/access/access.guard';
import type { AuthUser } from '../../../src/auth/auth-user';

/** The one rule (CONTRACT §3 "Projects and sharing") on its own: roles, personal images, the answers. */
describe('AccessPolicy', () => {
  const policy = new AccessPolicy();
  const user = (projects: AuthUser['projects']): AuthUser => ({
    id: 7,
    email: 'a@example.org',
    role: 'user',
    isPremium: false,
    projects,
  });

  it('a personal image is its uploader’s alone, whatever the caller’s projects', () => {
    const u = user({ 1: 'owner' });
    for (const need of ['view', 'edit', 'manage'] as const) {
      expect(policy.decide(u, { ownerId: 7, projectId: null }, need)).toBe('ok');
      expect(policy.decide(u, { ownerId: 8, projectId: null }, need)).toBe('hidden');
    }
  });

  it('in a project the role decides: viewer < editor < owner; not a member is hidden', () => {
    const u = user({ 1: 'viewer', 2: 'editor', 3: 'owner' });
    const at = (projectId: number) => ({ ownerId: 7, projectId });
    expect([1, 2, 3, 4].map((p) => policy.decide(u, at(p), 'view'))).toEqual(['ok', 'ok', 'ok', 'hidden']);
    expect([1, 2, 3, 4].map((p) => policy.decide(u, at(p), 'edit'))).toEqual([
      'forbidden',
      'ok',
      'ok',
      'hidden',
    ]);
    expect([1, 2, 3, 4].map((p) => policy.decide(u, at(p), 'manage'))).toEqual([
      'forbidden',
      'forbidden',
      'ok',
      'hidden',
    ]);
    // Uploading an image into a project does not make it the uploader's when the role is gone.
    expect(policy.decide(user({}), at(2), 'view')).toBe('hidden');
    expect(policy.projectsAllowing(u, 'edit').sort()).toEqual([2, 3]);
  });

  it('answers 404 for hidden and 403 for forbidden', () => {
    expect(() => policy.enforce('hidden', 'image', 'view')).toThrow(NotFoundException);
    expect(() => policy.enforce('forbidden', 'image', 'edit')).toThrow(ForbiddenException);
    expect(() => policy.enforce('ok', 'image', 'edit')).not.toThrow();
  });

  it('id lists: distinct, sorted, at most the bound, decimal int4 only', () => {
    expect(parseIdList('3,1,3', 'imageIds')).toEqual([1, 3]);
    expect(() => parseIdList('1,0x10', 'imageIds')).toThrow('imageIds');
    expect(() => parseIdList('2147483648', 'imageIds')).toThrow('imageIds');
    expect(() => parseIdList(Array.from({ length: 10_001 }, (_, i) => i + 1).join(','), 'imageIds')).toThrow(
      'at most 10000',
    );
    expect(() => parseIdList('1,2,3', 'imageIds', 2)).toThrow('at most 2');
  });
});
