import { mkdirSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { io, Socket } from 'socket.io-client';
import type {
  ClientToServerEvents,
  ProjectSubscribeAck,
  ServerToClientEvents,
} from '../../src/common/contracts';
import { BackendProcess, startProcess, startProcesses, stopAllProcesses } from '../support/processes';
import { until } from '../support/checks';

/**
 * Projects across real api processes (CONTRACT §3 "Projects and sharing", §6 project rooms):
 *  - a member removed through one process is refused on the other at the next request, and their
 *    socket (on the other process) stops getting the project's events at once;
 *  - deleting a project of 10 000 images answers at once, the event loop stays responsive while the
 *    sweeper works, and a process killed halfway leaves a project that a restarted process finishes:
 *    every image row and file and every variant gone, nothing of another project or personal touched.
 */
jest.setTimeout(240_000);

type ClientSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
const N = 10_000;

describe('projects across processes', () => {
  let a: BackendProcess;
  let b: BackendProcess;
  let pg: Client;
  const sockets: ClientSocket[] = [];
  const env = {
    QUEUE_NAME: `${process.env.QUEUE_NAME}_proj_${Date.now()}`,
    MAX_PENDING_TASKS_PER_USER: '100000',
  };
  const uploads = process.env.UPLOAD_DIR!;

  const connect = async (p: BackendProcess, token: string) => {
    const events: Array<{ event: string; payload: Record<string, unknown> }> = [];
    const socket: ClientSocket = io(p.url, {
      path: '/socket.io',
      auth: { token },
      transports: ['websocket'],
      reconnection: false,
    });
    sockets.push(socket);
    socket.onAny((event: string, payload: Record<string, unknown>) => events.push({ event, payload }));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    return { socket, events };
  };
  const subscribe = (s: ClientSocket, projectId: number) =>
    new Promise<ProjectSubscribeAck>((resolve) => s.emit('project:subscribe', { projectId }, resolve));
  const email = async (p: BackendProcess, token: string): Promise<string> =>
    (await (await p.request('/api/auth/me', { token })).json()).email;
  /** Image rows in SQL (enqueue never reads the file; nothing consumes the queue here). */
  const rows = async (
    userId: number,
    projectId: number | null,
    n: number,
    files = false,
  ): Promise<Array<{ id: number; storage_path: string }>> => {
    const tag = randomBytes(6).toString('hex');
    const r = await pg.query<{ id: number; storage_path: string }>(
      `INSERT INTO images (user_id, project_id, original_name, storage_path, mime_type, size_bytes, width, height)
       SELECT $1, $2, 'x.png', 'proj/' || $3 || '/' || g || '.png', 'image/png', 4, 64, 48 FROM generate_series(1, $4::int) g RETURNING id, storage_path`,
      [userId, projectId, tag, n],
    );
    if (files) {
      mkdirSync(path.join(uploads, 'proj', tag), { recursive: true });
      for (const row of r.rows) {
        writeFileSync(path.join(uploads, row.storage_path), 'png!');
        // A variant for every tenth image (a thumbnail), as MediaService keeps them: <name>.d/
        if (row.id % 10 === 0) {
          const dir = path.join(uploads, row.storage_path.replace(/\.png$/, '.d'));
          mkdirSync(dir, { recursive: true });
          writeFileSync(path.join(dir, 'thumb-64.webp'), 'webp');
        }
      }
    }
    return r.rows;
  };

  beforeAll(async () => {
    [a, b] = await startProcesses([
      { role: 'api', env, name: 'apiA' },
      { role: 'api', env, name: 'apiB' },
    ]);
    pg = new Client({ connectionString: process.env.DATABASE_URL });
    await pg.connect();
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await pg?.end();
    await stopAllProcesses();
  });

  it('a member removed on one process is refused on the other at the next request, and their socket stops getting the events', async () => {
    const owner = await a.register();
    const member = await a.register();
    const stranger = await a.register();
    const p = await (
      await a.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'Shared' } })
    ).json();
    const m = await (
      await a.request(`/api/projects/${p.id}/members`, {
        method: 'POST',
        token: owner.token,
        json: { email: await email(a, member.token), role: 'editor' },
      })
    ).json();
    const imgs = await rows(owner.user.id, p.id, 3);

    // B caches the member with the role (their next request there is served from that cache).
    expect((await b.request(`/api/projects/${p.id}`, { token: member.token })).status).toBe(200);
    expect((await b.request(`/api/images/${imgs[0].id}`, { token: member.token })).status).toBe(200);

    const ms = await connect(b, member.token);
    const os = await connect(b, owner.token); // the control: still a member, gets every event
    const ss = await connect(a, stranger.token);
    expect(await subscribe(ms.socket, p.id)).toEqual({ ok: true });
    expect(await subscribe(os.socket, p.id)).toEqual({ ok: true });
    expect(await subscribe(ss.socket, p.id)).toEqual({ ok: false, error: 'not found' });
    expect(await subscribe(ss.socket, 2147483647)).toEqual({ ok: false, error: 'not found' });

    // An event of a task in the project, queued by the owner through A, reaches the member on B with projectId.
    const t1 = await (
      await a.request(`/api/images/${imgs[0].id}/segmentation`, {
        method: 'POST',
        token: owner.token,
        json: {},
      })
    ).json();
    await until(
      'member got the queued event',
      () => ms.events.some((e) => e.event === 'segmentation:queued' && e.payload.taskId === t1.taskId),
      5000,
      20,
    );
    expect(ms.events.find((e) => e.payload.taskId === t1.taskId)?.payload).toMatchObject({
      taskId: t1.taskId,
      imageId: imgs[0].id,
      projectId: p.id,
    });
    // The owner (queued it, subscribed too) gets it once.
    await until('owner got it', () => os.events.some((e) => e.payload.taskId === t1.taskId), 5000, 20);
    expect(os.events.filter((e) => e.payload.taskId === t1.taskId)).toHaveLength(1);
    expect(ss.events.some((e) => e.payload.taskId === t1.taskId)).toBe(false);

    // Removed through A: the very next request on B is refused (404: no longer a member).
    expect(
      (await a.request(`/api/projects/${p.id}/members/${m.id}`, { method: 'DELETE', token: owner.token }))
        .status,
    ).toBe(204);
    expect((await b.request(`/api/projects/${p.id}`, { token: member.token })).status).toBe(404);
    expect((await b.request(`/api/images/${imgs[0].id}`, { token: member.token })).status).toBe(404);
    expect((await b.request(`/api/segmentation/tasks/${t1.taskId}`, { token: member.token })).status).toBe(
      404,
    );

    // The next event of the project no longer reaches the member's socket (CONTRACT §6: within one second;
    // here at once): the removal took their sockets out of the room before answering, so no later event
    // reaches them however slow this runner is.
    const t2 = await (
      await a.request(`/api/images/${imgs[1].id}/segmentation`, {
        method: 'POST',
        token: owner.token,
        json: {},
      })
    ).json();
    await until(
      'owner got the second event',
      () => os.events.some((e) => e.payload.taskId === t2.taskId),
      5000,
      20,
    );
    // Events published after the removal in one connection's order: the room leave went first.
    const t3 = await (
      await a.request(`/api/segmentation/tasks/${t1.taskId}`, { method: 'DELETE', token: owner.token })
    ).json();
    await until(
      'owner got the cancel',
      () => os.events.some((e) => e.event === 'segmentation:cancelled' && e.payload.taskId === t3.taskId),
      5000,
      20,
    );
    expect(
      ms.events.filter((e) => e.payload.taskId === t2.taskId || e.event === 'segmentation:cancelled'),
    ).toEqual([]);
    // A role change too: a viewer on A is refused an edit on B at the next request.
    const v = await a.register();
    const vm = await (
      await a.request(`/api/projects/${p.id}/members`, {
        method: 'POST',
        token: owner.token,
        json: { email: await email(a, v.token), role: 'editor' },
      })
    ).json();
    expect(
      (
        await b.request(`/api/images/${imgs[2].id}/segmentation`, {
          method: 'POST',
          token: v.token,
          json: {},
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await a.request(`/api/projects/${p.id}/members/${vm.id}`, {
          method: 'PATCH',
          token: owner.token,
          json: { role: 'viewer' },
        })
      ).status,
    ).toBe(200);
    expect(
      (await b.request(`/api/segmentation/tasks/${t2.taskId}`, { method: 'DELETE', token: v.token })).status,
    ).toBe(403);
  });

  it(`a project of ${N} images: 204 at once, the event loop stays free, a crash halfway is finished after restart, nothing else touched`, async () => {
    const owner = await a.register();
    const p = await (
      await a.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'Big' } })
    ).json();
    const other = await (
      await a.request('/api/projects', { method: 'POST', token: owner.token, json: { name: 'Other' } })
    ).json();
    const doomed = await rows(owner.user.id, p.id, N, true);
    const keptOther = await rows(owner.user.id, other.id, 3, true);
    const keptPersonal = await rows(owner.user.id, null, 3, true);
    // Open tasks on some of the doomed images: cancelled as a delete of one image would.
    const batch = await a.request('/api/segmentation/batch', {
      method: 'POST',
      token: owner.token,
      json: { imageIds: doomed.slice(0, 50).map((r) => r.id) },
    });
    expect(batch.status).toBe(202);

    const left = async () =>
      (await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM images WHERE project_id = $1', [p.id]))
        .rows[0].n;
    // A third process, the one that will be killed halfway.
    const c = await startProcess({ role: 'api', env, name: 'apiC' });
    const started = Date.now();
    const del = await c.request(`/api/projects/${p.id}`, { method: 'DELETE', token: owner.token });
    const answeredMs = Date.now() - started;
    expect(del.status).toBe(204);
    // The request did not wait for the sweep: the project's images are still there when it is answered.
    expect(await left()).toBeGreaterThan(0);
    // Gone for everyone at once (every process), though its rows are still being removed.
    expect((await b.request(`/api/projects/${p.id}`, { token: owner.token })).status).toBe(404);
    expect((await b.request(`/api/images/${doomed[N - 1].id}`, { token: owner.token })).status).toBe(404);

    // While C sweeps, its event loop stays free: every liveness probe is answered, and the loop lag that C
    // itself samples (every 500 ms, reported by /live) stays under 200 ms. Measured
    // inside C, so neither this runner's own pauses nor the HTTP round trip count.
    await until('the sweep has started', async () => (await left()) < N, 30_000, 50);
    const lags: number[] = [];
    let liveMs = 0;
    await until(
      'the sweep is well under way',
      async () => {
        const probe = Date.now();
        const live = await c.request('/api/health/live');
        liveMs = Math.max(liveMs, Date.now() - probe);
        expect(live.status).toBe(200);
        lags.push(
          ((await live.json()) as { details: { eventLoop: { lagMs: number } } }).details.eventLoop.lagMs,
        );
        return (await left()) <= N - 1000;
      },
      60_000,
      50,
    );
    expect(lags.length).toBeGreaterThan(0);
    expect(Math.max(...lags)).toBeLessThan(200);
    c.kill('SIGKILL');
    await c.waitExit();
    const remaining = await left();
    expect(remaining).toBeGreaterThan(0); // killed halfway
    expect(
      (await pg.query('SELECT deleting_at FROM projects WHERE id = $1', [p.id])).rows[0].deleting_at,
    ).not.toBeNull();

    // A restarted process finishes it.
    const restarted = Date.now();
    const d = await startProcess({ role: 'api', env, name: 'apiD' });
    await until(
      'the project is gone',
      async () => (await pg.query('SELECT 1 FROM projects WHERE id = $1', [p.id])).rowCount === 0,
      120_000,
      200,
    );
    // The figures of this run (stderr: Jest does not buffer it).
    process.stderr.write(
      `project delete of ${N} images: 204 in ${answeredMs} ms; slowest live probe during the sweep ${liveMs} ms (loop lag max ${Math.max(...lags)} ms); ` +
        `killed with ${remaining} left; finished ${Date.now() - restarted} ms after the restart (start included)\n`,
    );
    expect(await left()).toBe(0);
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM project_members WHERE project_id = $1', [p.id])).rows[0]
        .n,
    ).toBe(0);
    const ids = doomed.map((r) => r.id);
    expect(
      (await pg.query('SELECT count(*)::int AS n FROM queue_jobs WHERE image_id = ANY($1::int[])', [ids]))
        .rows[0].n,
    ).toBe(0);
    // No file and no variant left of the project; everything of the other project and the personal images kept.
    const dir = path.join(uploads, path.dirname(doomed[0].storage_path));
    expect(readdirSync(dir)).toEqual([]);
    for (const r of [...keptOther, ...keptPersonal]) {
      expect(existsSync(path.join(uploads, r.storage_path))).toBe(true);
      expect((await pg.query('SELECT 1 FROM images WHERE id = $1', [r.id])).rowCount).toBe(1);
    }
    expect((await d.request(`/api/projects/${other.id}`, { token: owner.token })).status).toBe(200);
  });
});
