import { Controller, Get, Module, Param } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { startTestApp, TestApp } from '../../support/app';
import { routeRules } from '../../../src/access/route-rules';
import { AccessPolicy } from '../../../src/access';
import { ACCESS_RULES_KEY, AccessRule } from '../../../src/access/access.types';

/**
 * The authorization rule cannot be forgotten: every route of the running application declares how
 * it is covered — an `@Access(...)` rule (AccessGuard + AccessPolicy), `@OwnOnly()`, `@Public()` or
 * `@Roles('admin')` — and every rule kind a route uses has its loader registered.
 */
describe('every registered route declares its access rule', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_routes` }, 'api');
  });
  afterAll(() => t?.close());

  it('no route of the application is uncovered', () => {
    const rules = routeRules(t.app.get(ModulesContainer));
    expect(rules.length).toBeGreaterThan(30);
    expect(rules.filter((r) => r.covered === 'none').map((r) => r.route)).toEqual([]);
    // The routes that touch an image, a task, a result, a file, an export or a project go through AccessGuard.
    const byRoute = new Map(rules.map((r) => [r.route, r.covered]));
    for (const route of [
      'GET images/:id',
      'PATCH images/:id',
      'DELETE images/:id',
      'GET images/:id/file',
      'GET images/:id/thumbnail',
      'GET images/:id/segmentation/overlay',
      'GET images/:id/segmentation',
      'POST images/:id/segmentation',
      'POST segmentation/batch',
      'GET segmentation/tasks',
      'GET segmentation/tasks/:taskId',
      'DELETE segmentation/tasks/:taskId',
      'GET segmentation/export',
      'GET projects/:id',
      'PATCH projects/:id',
      'DELETE projects/:id',
      'POST projects/:id/images',
      'GET projects/:id/images',
      'POST projects/:id/segmentation',
      'GET projects/:id/members',
      'POST projects/:id/members',
      'PATCH projects/:id/members/:memberId',
      'DELETE projects/:id/members/:memberId',
    ]) {
      expect([route, byRoute.get(route)]).toEqual([route, 'access']);
    }
  });

  it('every rule kind used by a route has its loader (a missing one would be a 500, not a bypass)', () => {
    const policy = t.app.get(AccessPolicy);
    const kinds = new Set<string>();
    for (const mod of t.app.get(ModulesContainer).values()) {
      for (const w of mod.controllers.values()) {
        const proto = (w.metatype as { prototype?: Record<string, unknown> } | null)?.prototype ?? {};
        for (const name of Object.getOwnPropertyNames(proto)) {
          const fn = proto[name];
          if (typeof fn !== 'function') continue;
          for (const r of (Reflect.getMetadata(ACCESS_RULES_KEY, fn) as AccessRule[] | undefined) ?? [])
            kinds.add(r.on);
        }
      }
    }
    expect([...kinds].sort()).toEqual(['image', 'images', 'project', 'task']);
    expect(() => policy.loader('image')).not.toThrow();
    expect(() => policy.loader('task')).not.toThrow();
    expect(() => policy.imagesLoader()).not.toThrow();
  });

  it('a route added without a rule is reported', async () => {
    @Controller('images')
    class ForgetfulController {
      @Get(':id/something-new')
      leak(@Param('id') id: string) {
        return id;
      }
    }
    @Module({ controllers: [ForgetfulController] })
    class ForgetfulModule {}
    const mod = await Test.createTestingModule({ imports: [ForgetfulModule] }).compile();
    expect(
      routeRules(mod.get(ModulesContainer))
        .filter((r) => r.covered === 'none')
        .map((r) => r.route),
    ).toEqual(['GET images/:id/something-new']);
    await mod.close();
  });
});
