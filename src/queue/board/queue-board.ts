import { Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { getStorageToken, type ThrottlerStorage } from '@nestjs/throttler';
import { createBullBoard } from '@bull-board/api';
import { BullAdapter } from '@bull-board/api/bullAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Job, JobStatus, Queue } from 'bull';
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import { Authenticator } from '../../auth/authenticator';
import { UsersService } from '../../auth/users.service';
import { toErrorBody } from '../../common/http-exception.filter';
import { redactSecrets } from '../../common/redact';
import { SegmentationQueue } from '../segmentation-queue';
import { BoardAuthenticator } from './board-auth';

/** Where the dashboard lives (routes registered on Fastify directly, so the global prefix is spelled out). */
export const QUEUE_BOARD_PATH = '/api/admin/queues';
export const QUEUE_BOARD_REALM = 'spheroseg queues';

/**
 * bull-board's page loads its font from Google Fonts: an air-gapped cluster gets a console error on
 * every page. The same font (Ubuntu, weights 300/400/500, from @fontsource/ubuntu) is served by the
 * board itself under `fonts/`, and the page's link is rewritten to it. A Content-Security-Policy then
 * keeps every page of the board on this origin, so nothing else can reach out either.
 */
const GOOGLE_FONTS_LINK = /<link[^>]+href="https:\/\/fonts\.googleapis\.com\/[^"]*"[^>]*>/g;
const LOCAL_FONT_LINKS = ['300', '400', '500'].map((w) => `<link href="fonts/${w}.css" rel="stylesheet">`).join('');
const FONT_ROOT = path.dirname(require.resolve('@fontsource/ubuntu/LICENSE'));
const BOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * A band queue on the board: with QUEUE_FAIRNESS=user its queued jobs sit in their users' lists rather
 * than in Bull's wait list, so its counts and its waiting (or paused) jobs come from SegmentationQueue,
 * which counts and lists both, in the order workers take them.
 */
class BandBoardAdapter extends BullAdapter {
  constructor(
    private readonly band: Queue,
    private readonly producer: SegmentationQueue,
  ) {
    super(band, { readOnlyMode: true });
  }

  override getJobCounts() {
    return this.producer.bandCounts(this.band) as unknown as ReturnType<BullAdapter['getJobCounts']>;
  }

  override async getJobs(statuses: JobStatus[], start = 0, end = -1): ReturnType<BullAdapter['getJobs']> {
    const queuedStatus = (await this.band.isPaused()) ? 'paused' : 'waiting';
    if (!statuses.includes(queuedStatus)) return super.getJobs(statuses, start, end);
    const ids = await this.producer.waitingIds(this.band, start, end < 0 ? start + 99 : end);
    const queued = (await Promise.all(ids.map((id) => this.band.getJob(id)))).filter((j): j is Job => j !== null);
    const others = statuses.filter((s) => s !== queuedStatus);
    const rest = others.length > 0 ? await super.getJobs(others, start, end) : [];
    const align = (this as unknown as { alignJobData(j: Job): Job }).alignJobData; // as BullAdapter shows every job
    return [...queued.map((j) => align(j)), ...rest] as Awaited<ReturnType<BullAdapter['getJobs']>>;
  }
}

/**
 * Mounts the Bull dashboard (@bull-board) on the app's Fastify instance, for admins only. Call it for
 * serving roles (`api`, `all`) before the app starts listening.
 *
 * The board's routes bypass Nest (no global AuthGuard, no exception filter), so an `onRequest` hook in
 * the board's own encapsulated Fastify context checks every request under the prefix — pages, JSON API
 * and static assets alike — with `BoardAuthenticator`. No or bad credentials get 401 with a Basic
 * challenge, so a browser shows its login prompt.
 *
 * The queues are read-only on the board: jobs are added, removed, paused and retried through the API
 * (SegmentationQueue, the task store), which keeps PostgreSQL and Bull in step; the board's own
 * add/clean/empty/retry/pause actions would bypass it.
 */
export async function mountQueueBoard(app: NestFastifyApplication): Promise<void> {
  const serverAdapter = new FastifyAdapter().setBasePath(QUEUE_BOARD_PATH);
  const producer = app.get(SegmentationQueue, { strict: false });
  createBullBoard({
    queues: producer
      .bullQueues()
      .map((queue) =>
        (producer.bands as ReadonlyArray<Queue>).includes(queue) ? new BandBoardAdapter(queue, producer) : new BullAdapter(queue, { readOnlyMode: true }),
      ),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'spheroseg queues' } },
  });

  const authenticator = new BoardAuthenticator(
    app.get(Authenticator, { strict: false }),
    app.get(UsersService, { strict: false }),
    app.get<symbol, ThrottlerStorage>(getStorageToken(), { strict: false }),
  );
  const logger = new Logger('QueueBoard');

  const guard = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    let status: number;
    let message: string;
    let retryAfter: number | undefined;
    try {
      const result = await authenticator.authenticate(req.headers.authorization, req.ip);
      if (result.ok) return;
      ({ status, message } = result);
      retryAfter = result.retryAfterSeconds;
    } catch (err) {
      // The credentials are never part of what is logged.
      logger.error({ err: redactSecrets((err as Error)?.message ?? String(err)) }, 'queue board authentication failed');
      const body = toErrorBody(err) as { statusCode: number; message: string };
      status = body.statusCode;
      message = body.message;
      retryAfter = status === 503 ? 5 : undefined;
    }
    if (status === 401) void reply.header('www-authenticate', `Basic realm="${QUEUE_BOARD_REALM}", charset="UTF-8"`);
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    await reply.code(status).send({ statusCode: status, error: STATUS_CODES[status] ?? 'Error', message });
  };

  await app.register(
    async (scope: FastifyInstance) => {
      scope.addHook('onRequest', guard);
      scope.addHook('onSend', async (_req, reply, payload) => {
        if (!String(reply.getHeader('content-type') ?? '').startsWith('text/html')) return payload;
        void reply.header('content-security-policy', BOARD_CSP);
        return typeof payload === 'string' ? payload.replace(GOOGLE_FONTS_LINK, LOCAL_FONT_LINKS) : payload;
      });
      await scope.register(fastifyStatic, {
        root: FONT_ROOT,
        prefix: '/fonts/',
        decorateReply: false,
        allowedPath: (pathname: string) => /^\/(?:[0-9a-z-]+\.css|files\/[0-9a-z-]+\.woff2?)$/.test(pathname),
      });
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: QUEUE_BOARD_PATH },
  );
}
