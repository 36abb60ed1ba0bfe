import { spawn } from 'node:child_process';
import { CHROMIUM, CHROMIUM_FLAGS } from '../support/chromium';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BackendProcess, startProcess, stopAllProcesses } from '../support/processes';

/**
 * The queue board (bull-board at /api/admin/queues) works air-gapped: nothing it serves points off
 * this host (its Google Fonts stylesheet is replaced by the same font served locally), checked by
 * crawling the page and every asset it references, and in headless Chromium, whose network log must
 * show no request to another host.
 */
const ADMIN = { email: 'ops@lab.test', password: 'ops-password-1' };
const BOARD = '/api/admin/queues';
const basic = `Basic ${Buffer.from(`${ADMIN.email}:${ADMIN.password}`).toString('base64')}`;

let api: BackendProcess;

beforeAll(async () => {
  api = await startProcess({
    role: 'api',
    env: { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password },
  });
}, 60_000);
afterAll(() => stopAllProcesses());

/** URLs an HTML page or a stylesheet makes a browser load (not links in scripts' strings). */
function references(body: string, type: string): string[] {
  const out: string[] = [];
  if (type.includes('html')) {
    for (const m of body.matchAll(
      /<(?:link|script|img|iframe|source|base)\b[^>]*?\s(?:href|src)="([^"]*)"/gi,
    ))
      out.push(m[1]);
    for (const m of body.matchAll(/url\(\s*['"]?([^'")]+)['"]?\s*\)/gi)) out.push(m[1]);
  }
  if (type.includes('css')) {
    for (const m of body.matchAll(/url\(\s*['"]?([^'")]+)['"]?\s*\)/gi)) out.push(m[1]);
    for (const m of body.matchAll(/@import\s+['"]([^'"]+)['"]/gi)) out.push(m[1]);
  }
  return out.filter((u) => !u.startsWith('data:') && !u.startsWith('#'));
}

/**
 * URLs of the requests a page started, from a Chromium net log: those whose network isolation key
 * is the page's site (the browser's own background requests have another or none). The log of a
 * browser that exited may lack its closing `]}`.
 */
function requestsOfPage(raw: string, pageHost: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = JSON.parse(`${raw.trim().replace(/,$/, '')}]}`);
  }
  const log = parsed as {
    constants: { logEventTypes: Record<string, number> };
    events: Array<{ type: number; params?: { url?: string; network_isolation_key?: string } }>;
  };
  const startJob = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  const urls = log.events
    .filter(
      (e) =>
        e.type === startJob &&
        e.params?.url &&
        String(e.params.network_isolation_key ?? '').includes(`//${pageHost}`),
    )
    .map((e) => e.params!.url!.replace(/ \(credentials redacted\)$/, ''));
  return [...new Set(urls)];
}

describe('queue board, air-gapped', () => {
  it('the page and every asset it references are served from this host, and nothing points elsewhere', async () => {
    const origin = new URL(api.url).origin;
    const start = new URL(`${BOARD}`, api.url);
    const seen = new Set<string>();
    const external: string[] = [];
    const failed: string[] = [];
    const queue: Array<{ url: URL; base: URL }> = [{ url: start, base: start }];
    let fonts = 0;
    while (queue.length) {
      const { url } = queue.shift()!;
      if (seen.has(url.href)) continue;
      seen.add(url.href);
      const res = await fetch(url, { headers: { authorization: basic } });
      const type = res.headers.get('content-type') ?? '';
      if (res.status !== 200) {
        failed.push(`${res.status} ${url.pathname}`);
        await res.body?.cancel();
        continue;
      }
      if (/font|woff/.test(type) || /\.woff2?$/.test(url.pathname)) fonts++;
      if (!/html|css/.test(type)) {
        await res.body?.cancel();
        continue;
      }
      const body = await res.text();
      // A page's relative links resolve against its <base href>.
      const baseHref = /<base\s+href="([^"]*)"/i.exec(body)?.[1];
      const base = baseHref ? new URL(baseHref, url) : url;
      for (const ref of references(body, type)) {
        const target = new URL(ref, base);
        if (target.origin !== origin) external.push(`${ref} (in ${url.pathname})`);
        else if (ref !== baseHref) queue.push({ url: target, base: target });
      }
    }
    expect({ external, failed }).toEqual({ external: [], failed: [] });
    expect([...seen].some((u) => u.includes('/static/js/'))).toBe(true);
    expect([...seen].some((u) => u.includes('/fonts/'))).toBe(true);
    expect(fonts).toBeGreaterThan(0);
  });

  it('its pages carry a Content-Security-Policy that keeps every load on this origin', async () => {
    const res = await fetch(`${api.url}${BOARD}`, { headers: { authorization: basic } });
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toMatch(/https?:|\*/);
  });

  it('serves only font files under fonts/ (no directory listing, no other file)', async () => {
    for (const p of ['/fonts/', '/fonts/package.json', '/fonts/README.md', '/fonts/../../../package.json']) {
      const res = await fetch(`${api.url}${BOARD}${p}`, { headers: { authorization: basic } });
      expect({ p, status: res.status }).toEqual({ p, status: 404 });
    }
    expect((await fetch(`${api.url}${BOARD}/fonts/400.css`)).status).toBe(401);
  });

  it('in headless Chromium: the board loads its scripts, styles and font, and no request it makes leaves this host', async () => {
    expect(existsSync(CHROMIUM)).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'spheroseg-chromium-'));
    const netLog = path.join(dir, 'net-log.json');
    const target = new URL(`${BOARD}`, api.url);
    target.username = encodeURIComponent(ADMIN.email);
    target.password = ADMIN.password;
    try {
      const dom = await new Promise<string>((resolve, reject) => {
        const child = spawn(
          CHROMIUM,
          [
            '--headless',
            ...CHROMIUM_FLAGS,
            '--disable-dev-shm-usage',
            `--user-data-dir=${path.join(dir, 'profile')}`,
            `--log-net-log=${netLog}`,
            '--virtual-time-budget=8000',
            '--dump-dom',
            target.href,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
        child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
        const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(out);
          else reject(new Error(`chromium exited ${code}: ${err.slice(-2000)}`));
        });
      });
      // The React app ran (under the CSP) and rendered the segmentation queues from the board's API.
      expect(dom).toContain('spheroseg queues');
      const pageRequests = requestsOfPage(readFileSync(netLog, 'utf8'), new URL(api.url).hostname);
      // The page's scripts, stylesheets and the locally served font were loaded…
      expect(pageRequests.some((u) => u.includes('/static/js/main.'))).toBe(true);
      expect(pageRequests.some((u) => /\/fonts\/files\/.+\.woff2/.test(u))).toBe(true);
      // …and nothing the page asked for left this host.
      expect(pageRequests.filter((u) => new URL(u).hostname !== '127.0.0.1')).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
