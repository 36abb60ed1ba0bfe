import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common';
import type { ModulesContainer } from '@nestjs/core';
import { IS_PUBLIC_KEY } from '../common/public.decorator';
import { ROLES_KEY } from '../auth/auth-user';
import { ACCESS_RULES_KEY, OWN_ONLY_KEY } from './access.types';

export interface RouteRule {
  /** `GET images/:id`, as declared (controller path + method path). */
  route: string;
  /** How the route is covered: `access` (AccessGuard rules), `own`, `public`, `admin`, or `none`. */
  covered: 'access' | 'own' | 'public' | 'admin' | 'none';
}

const meta = <T>(key: string, ...targets: object[]): T | undefined => {
  for (const t of targets) {
    const v = Reflect.getMetadata(key, t) as T | undefined;
    if (v !== undefined) return v;
  }
  return undefined;
};

/**
 * Every route handler of every registered controller with how the authorization rule covers it.
 * A route is covered by `@Access(...)`, `@OwnOnly()`, `@Public()` or `@Roles('admin')` (on the
 * method or its controller); `none` is a route that would let a caller reach somebody else's data
 * unchecked. The route-rules test fails for any `none`.
 */
export function routeRules(modules: ModulesContainer): RouteRule[] {
  const out: RouteRule[] = [];
  for (const mod of modules.values()) {
    for (const wrapper of mod.controllers.values()) {
      const ctrl = wrapper.metatype as (new (...a: unknown[]) => unknown) | null;
      if (!ctrl?.prototype) continue;
      const base = String(meta<string | string[]>(PATH_METADATA, ctrl) ?? '');
      for (const name of Object.getOwnPropertyNames(ctrl.prototype)) {
        if (name === 'constructor') continue;
        const fn = (ctrl.prototype as Record<string, unknown>)[name];
        if (typeof fn !== 'function') continue;
        const path = meta<string | string[]>(PATH_METADATA, fn);
        if (path === undefined) continue;
        const method = RequestMethod[meta<number>(METHOD_METADATA, fn) ?? 0];
        const route = `${method} ${[base, String(path)].filter((p) => p && p !== '/').join('/')}`;
        const roles = meta<string[]>(ROLES_KEY, fn, ctrl);
        const covered: RouteRule['covered'] = meta<unknown[]>(ACCESS_RULES_KEY, fn)?.length
          ? 'access'
          : meta<boolean>(OWN_ONLY_KEY, fn, ctrl)
            ? 'own'
            : meta<boolean>(IS_PUBLIC_KEY, fn, ctrl)
              ? 'public'
              : roles?.includes('admin')
                ? 'admin'
                : 'none';
        out.push({ route, covered });
      }
    }
  }
  return out;
}
