import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { createApp } from '../../src/app.factory';
import type { AppRole } from '../../src/config/app-role';

/** A fetch Response whose JSON body tests read without casts. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TestResponse = Omit<Response, 'json'> & { json(): Promise<any> };

export interface TestApp {
  app: NestFastifyApplication;
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  close(): Promise<void>;
  /** Registers a fresh user; returns its token and public user. */
  register(email?: string, password?: string): Promise<{ token: string; user: { id: number; email: string } }>;
  /** fetch() against the app with an optional bearer token. */
  request(path: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<TestResponse>;
}

/**
 * Starts the real application in-process (Fastify, real PostgreSQL and Redis of this test run) on a
 * free port. `env` overrides process.env for this app only; the previous values are restored on close.
 */
export async function startTestApp(env: Record<string, string> = {}, role: AppRole = 'all'): Promise<TestApp> {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const app = await createApp({ role });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.getHttpServer().address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  const request: TestApp['request'] = (path, init = {}) => {
    const headers = new Headers(init.headers);
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('content-type', 'application/json');
      body = JSON.stringify(init.json);
    }
    return fetch(url + path, { ...init, headers, body }) as Promise<TestResponse>;
  };

  const register: TestApp['register'] = async (email, password = 'password-123') => {
    const res = await request('/api/auth/register', {
      method: 'POST',
      json: { email: email ?? `u_${randomBytes(5).toString('hex')}@example.org`, password },
    });
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { accessToken: string; user: { id: number; email: string } };
    return { token: body.accessToken, user: body.user };
  };

  return {
    app,
    url,
    request,
    register,
    close: async () => {
      await app.close();
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}
