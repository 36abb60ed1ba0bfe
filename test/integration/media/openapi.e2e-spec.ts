import { startTestApp, TestApp } from '../../support/app';

describe('OpenAPI document of the media and export routes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_openapi` });
  });
  afterAll(() => t?.close());

  it('describes every new route with a summary and its success and error responses', async () => {
    const doc = await (await t.request('/api/docs/json')).json();
    const routes: Array<[string, string[], string]> = [
      ['/api/images/{id}/file', ['200', '206', '304', '400', '401', '404', '416'], 'image/png'],
      ['/api/images/{id}/thumbnail', ['200', '304', '400', '401', '404'], 'image/webp'],
      ['/api/images/{id}/segmentation/overlay', ['200', '304', '400', '401', '404'], 'image/png'],
      ['/api/segmentation/export', ['200', '400', '401', '404'], 'text/csv'],
    ];
    for (const [route, codes, type] of routes) {
      const op = doc.paths[route]?.get;
      expect(op).toBeDefined();
      expect(op.summary).toEqual(expect.any(String));
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(codes));
      expect(JSON.stringify(op.responses['200'].content)).toContain(type);
      for (const code of codes.filter((c) => Number(c) >= 400)) expect(op.responses[code].content['application/json'].schema.$ref).toBe('#/components/schemas/ErrorBody');
    }
    expect(doc.components.schemas.ImageDto.properties.urls).toBeDefined();
  });
});
