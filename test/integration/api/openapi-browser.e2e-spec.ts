import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { CHROMIUM, CHROMIUM_FLAGS } from '../../support/chromium';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { Browser, HTTPResponse, Page } from 'puppeteer-core';
import { startTestApp, TestApp } from '../../support/app';
import { uploadImage } from '../../support/fixtures';
import { MlStub } from '../../support/ml-stub';

/**
 * Drives the real Swagger UI at /api/docs in headless Chromium (Debian's /usr/bin/chromium): the
 * document alone (openapi.e2e-spec.ts) cannot show that "Try it out" actually sends a request a
 * user can read the answer of. Chromium missing is a failure, not a skip: CI installs it (.ci/run).
 */

jest.setTimeout(30_000);

describe('Swagger UI at /api/docs (headless Chromium)', () => {
  const stub = new MlStub({ imageWidth: 64, imageHeight: 48 });
  let t: TestApp;
  let browser: Browser;
  let page: Page;
  let profile: string;
  let token: string;
  let imageId: number;
  let taskId: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH`);
    await stub.start();
    t = await startTestApp({ QUEUE_NAME: `${process.env.QUEUE_NAME}_oasui`, ML_SERVICE_URL: stub.url });
    ({ token } = await t.register());
    imageId = await uploadImage(t, token);
    const res = await t.request(`/api/images/${imageId}/segmentation`, { method: 'POST', token, json: {} });
    if (res.status !== 202) throw new Error(`enqueue failed: ${res.status} ${await res.text()}`);
    ({ taskId } = (await res.json()) as { taskId: string });

    profile = mkdtempSync(join(tmpdir(), 'spheroseg-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      args: ['--headless=new', ...CHROMIUM_FLAGS],
    });
    page = await browser.newPage();
    await page.goto(`${t.url}/api/docs`, { waitUntil: 'networkidle0' });
    await page.waitForSelector('.opblock', { timeout: 15_000 });
  });

  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await t?.close();
    await stub.stop();
  });

  it('authorizes with the bearer token through the Authorize dialog', async () => {
    await page.click('.auth-wrapper button.authorize');
    await page.waitForSelector('.modal-ux input[aria-label="auth-bearer-value"]');
    await page.type('.modal-ux input[aria-label="auth-bearer-value"]', token);
    await page.click('.modal-ux button.modal-btn.auth.authorize');
    // Once authorized the dialog offers "Logout" instead of "Authorize".
    await page.waitForSelector('.modal-ux button::-p-text(Logout)');
    await page.click('.modal-ux button.btn-done');
    await page.waitForSelector('.modal-ux', { hidden: true });
  });

  /** Expands GET `path`, clicks "Try it out" then "Execute"; returns the response the page got and the rendered body text. */
  async function tryItOut(path: string): Promise<{ response: HTTPResponse; rendered: string }> {
    const block = `.opblock-get:has(.opblock-summary-path[data-path="${path}"])`;
    await page.waitForSelector(block);
    await page.click(`${block} .opblock-summary-control`);
    await page.waitForSelector(`${block} .try-out__btn`);
    await page.click(`${block} .try-out__btn`);
    await page.waitForSelector(`${block} button.execute`);
    const sent = page.waitForResponse(
      (r) => r.request().method() === 'GET' && new URL(r.url()).pathname === path && r.request().resourceType() !== 'document',
      { timeout: 10_000 },
    );
    await page.click(`${block} button.execute`);
    const response = await sent;
    const bodySel = `${block} .live-responses-table .response-col_description pre`;
    await page.waitForSelector(bodySel, { timeout: 10_000 });
    const rendered = await page.$eval(bodySel, (el) => el.textContent ?? '');
    return { response, rendered };
  }

  it('GET /api/images: "Try it out" → "Execute" sends the request with the token and shows the 200 list', async () => {
    const { response, rendered } = await tryItOut('/api/images');
    expect(response.status()).toBe(200);
    expect(response.request().headers().authorization).toBe(`Bearer ${token}`);
    const q = new URL(response.url()).searchParams;
    expect([q.get('page'), q.get('limit')]).toEqual(['1', '20']);
    const body: unknown = JSON.parse(rendered);
    expect(JSON.stringify(body)).toContain(`"id":${imageId}`);
  });

  it('GET /api/segmentation/tasks: "Try it out" → "Execute" sends the request and shows the 200 list with the task', async () => {
    const { response, rendered } = await tryItOut('/api/segmentation/tasks');
    expect(response.status()).toBe(200);
    expect(response.request().headers().authorization).toBe(`Bearer ${token}`);
    expect(rendered).toContain(taskId);
    expect(JSON.parse(rendered)).toBeTruthy();
  });
});
