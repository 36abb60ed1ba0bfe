import { startTestApp, TestApp } from '../../support/app';

interface Op {
  summary?: string;
  parameters?: Array<{ name: string; in: string; schema?: { type?: string } }>;
  requestBody?: { required?: boolean };
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
  security?: unknown[];
}

describe('OpenAPI document (/api/docs/json)', () => {
  let t: TestApp;
  let doc: {
    openapi: string;
    paths: Record<string, Record<string, Op>>;
    components: { schemas: Record<string, unknown> };
  };
  const ops = (): Array<[string, string, Op]> =>
    Object.entries(doc.paths).flatMap(([p, m]) =>
      Object.entries(m).map(([method, op]) => [method, p, op] as [string, string, Op]),
    );

  beforeAll(async () => {
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_oas` });
    doc = (await (await t.request('/api/docs/json')).json()) as typeof doc;
  });
  afterAll(() => t?.close());

  it('is OpenAPI 3 and defines the ErrorBody schema {statusCode, error, message}', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(
      Object.keys((doc.components.schemas.ErrorBody as { properties: object }).properties).sort(),
    ).toEqual(['error', 'message', 'statusCode']);
  });

  it('every operation has a summary, a 2xx with a schema (or 204) and its error responses with ErrorBody', () => {
    const problems: string[] = [];
    expect(ops().length).toBeGreaterThan(15);
    for (const [method, p, op] of ops()) {
      const name = `${method.toUpperCase()} ${p}`;
      if (!op.summary) problems.push(`${name}: no summary`);
      const ok = Object.entries(op.responses).filter(([s]) => /^2/.test(s));
      if (ok.length === 0) problems.push(`${name}: no 2xx`);
      // A success may be JSON, a file or CSV: a schema under any of its media types.
      for (const [s, r] of ok)
        if (s !== '204' && !Object.values(r.content ?? {}).some((c) => c.schema))
          problems.push(`${name}: ${s} has no schema`);
      const errors = Object.entries(op.responses).filter(([s]) => /^[45]/.test(s));
      for (const [s, r] of errors) {
        const schema = r.content?.['application/json']?.schema as
          { $ref?: string; type?: string } | undefined;
        if (!schema) problems.push(`${name}: ${s} has no schema`);
        else if (!p.startsWith('/api/health') && schema.$ref !== '#/components/schemas/ErrorBody')
          problems.push(`${name}: ${s} is not ErrorBody`);
      }
      const has = (s: number) => String(s) in op.responses;
      const isPublic = p.startsWith('/api/health') || ['/api/auth/register', '/api/auth/login', '/api/auth/logout'].includes(p);
      if (!isPublic && !has(401)) problems.push(`${name}: no 401`);
      if (!p.startsWith('/api/health') && !has(429)) problems.push(`${name}: no 429`);
      if ((p.includes('{id}') || p.includes('{taskId}')) && !has(400))
        problems.push(`${name}: no 400 for its path id`);
      if ((p.includes('{id}') || p.includes('{taskId}') || p.includes('{service}')) && !has(404))
        problems.push(`${name}: no 404`);
      if ((p.startsWith('/api/queue') || p.startsWith('/api/admin')) && !has(403))
        problems.push(`${name}: no 403`);
      if (op.requestBody && !has(400)) problems.push(`${name}: a body and no 400`);
    }
    expect(problems).toEqual([]);
  });

  it('page and limit are integers (so "Try it out" sends them) on both list routes', () => {
    for (const p of ['/api/images', '/api/segmentation/tasks']) {
      const params = doc.paths[p].get.parameters ?? [];
      for (const n of ['page', 'limit'])
        expect(params.find((x) => x.name === n)?.schema?.type).toBe('integer');
    }
  });

  it('documents enqueue as 202 (200 for the reused task) with an optional body', () => {
    const op = doc.paths['/api/images/{id}/segmentation'].post;
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['202', '200']));
    expect(op.responses['201']).toBeUndefined();
    expect(op.requestBody?.required).toBe(false);
  });

  it('documents every project route with its body, answer and 403/404 (CONTRACT §3 "Projects and sharing")', () => {
    const want: Array<[string, string, number[]]> = [
      ['post', '/api/projects', [201, 400]],
      ['get', '/api/projects', [200, 400]],
      ['get', '/api/projects/{id}', [200, 400, 404]],
      ['patch', '/api/projects/{id}', [200, 400, 403, 404]],
      ['delete', '/api/projects/{id}', [204, 400, 403, 404]],
      ['post', '/api/projects/{id}/images', [201, 400, 403, 404, 413, 415]],
      ['get', '/api/projects/{id}/images', [200, 400, 404]],
      ['post', '/api/projects/{id}/segmentation', [202, 400, 403, 404, 429]],
      ['get', '/api/projects/{id}/members', [200, 400, 404]],
      ['post', '/api/projects/{id}/members', [201, 400, 403, 404, 409]],
      ['patch', '/api/projects/{id}/members/{memberId}', [200, 400, 403, 404]],
      ['delete', '/api/projects/{id}/members/{memberId}', [204, 400, 403, 404]],
      ['patch', '/api/images/{id}', [200, 400, 403, 404]],
      ['delete', '/api/images/{id}', [204, 400, 403, 404]],
      ['delete', '/api/segmentation/tasks/{taskId}', [200, 400, 403, 404, 409]],
      ['post', '/api/images/{id}/segmentation', [202, 400, 404]],
    ];
    const missing: string[] = [];
    for (const [method, p, statuses] of want) {
      const op = doc.paths[p]?.[method];
      if (!op) {
        missing.push(`${method} ${p}: not documented`);
        continue;
      }
      for (const st of statuses) if (!(String(st) in op.responses)) missing.push(`${method} ${p}: no ${st}`);
      if (['post', 'patch'].includes(method) && !p.endsWith('/images') && !op.requestBody)
        missing.push(`${method} ${p}: no request body`);
    }
    expect(missing).toEqual([]);
    for (const name of [
      'ProjectDto',
      'ProjectListDto',
      'MemberDto',
      'MemberListDto',
      'CreateProjectDto',
      'AddMemberDto',
      'MoveImageDto',
    ]) {
      expect([name, name in doc.components.schemas]).toEqual([name, true]);
    }
  });
});
