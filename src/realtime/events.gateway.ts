import { Inject, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import type { DefaultEventsMap, ExtendedError, Server, Socket } from 'socket.io';
import { RedisAdapter } from '@socket.io/redis-adapter';
import {
  ML_STATUS_READER,
  MlStatusReader,
  MlStatusSnapshot,
  ClientToServerEvents,
  ProjectSubscribeAck,
  projectRoom,
  ServerToClientEvents,
  userRoom,
} from '../common/contracts';
import { withTimeout } from '../common/with-timeout';
import { SOCKET_FLOOD_MAX_PACKETS_PER_SECOND, SOCKET_MAX_HTTP_BUFFER_BYTES } from './realtime.constants';
import { RateLimitedWarner } from './rate-limited-logger';
import { handshakeCredentials, RealtimeSocketData, SOCKET_AUTHENTICATOR, SocketAuthenticator } from './socket-auth';

export type RealtimeServer = Server<
  ClientToServerEvents,
  ServerToClientEvents,
  DefaultEventsMap,
  RealtimeSocketData
>;
export type RealtimeSocket = Socket<
  ClientToServerEvents,
  ServerToClientEvents,
  DefaultEventsMap,
  RealtimeSocketData
>;

const NOT_FOUND: ProjectSubscribeAck = { ok: false, error: 'not found' };
/** `{ projectId }` with a positive int4 id, else null. */
const projectIdOf = (body: unknown): number | null => {
  const id = body && typeof body === 'object' ? (body as { projectId?: unknown }).projectId : undefined;
  return typeof id === 'number' && Number.isInteger(id) && id >= 1 && id <= 2_147_483_647 ? id : null;
};

/** Largest delay setTimeout accepts; longer token lifetimes are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const STATUS_READ_TIMEOUT_MS = 2000;
/** What a socket is told when the status cannot be read: the same as "no worker reports the ML service". */
const UNKNOWN_STATUS: MlStatusSnapshot = { state: 'open', available: false };

/**
 * Socket.IO endpoint of CONTRACT §6, on the API port at `/socket.io` (roles `api` and `all`).
 *
 * - Handshake authentication in a Socket.IO middleware (`auth: { token }` or `auth: { apiKey }`,
 *   checked by the auth module's SocketAuthenticator as the REST API checks them): a missing, invalid
 *   or ended credential refuses the connection with `connect_error` "unauthorized"; the connection
 *   handler never runs for it.
 * - Each socket joins its user's room; events reach it from any process through the Redis adapter
 *   (see RedisIoAdapter / RealtimePublisher) and it receives `ml:status` once right after connecting.
 * - Project rooms: `project:subscribe` / `project:unsubscribe` (acknowledged), see subscribeProject.
 * - A socket is disconnected when its token (or API key) expires, when its session ends or its key is
 *   revoked (on any api process), and when it sends more than
 *   SOCKET_FLOOD_MAX_PACKETS_PER_SECOND packets in a second.
 *
 * CORS is not set here: decorator options are static, so the adapter adds the configured policy
 * (`socketCorsOptions`, from CORS_ORIGINS / NODE_ENV) when it creates the server.
 */
@WebSocketGateway({
  path: '/socket.io',
  serveClient: false,
  maxHttpBufferSize: SOCKET_MAX_HTTP_BUFFER_BYTES,
  connectTimeout: 10_000,
})
export class EventsGateway implements OnGatewayInit<RealtimeServer>, OnGatewayConnection<RealtimeSocket> {
  private readonly logger = new Logger(EventsGateway.name);
  private readonly floodWarner = new RateLimitedWarner(this.logger);

  constructor(
    @Inject(SOCKET_AUTHENTICATOR) private readonly sockets: SocketAuthenticator,
    @Inject(ML_STATUS_READER) private readonly status: MlStatusReader,
    @Optional() @InjectDataSource() private readonly db?: DataSource,
  ) {}

  /**
   * `project:subscribe { projectId }` → ack `{ ok: true }` when the caller is a member of that live
   * project (the socket joins its room: every event of the project's tasks), else `{ ok: false,
   * error: "not found" }`. A removed member's sockets are taken out of the room on every process by
   * RealtimePublisher.leaveProject (Redis), right after the change.
   */
  @SubscribeMessage('project:subscribe')
  async subscribeProject(
    @ConnectedSocket() socket: RealtimeSocket,
    @MessageBody() body: unknown,
  ): Promise<ProjectSubscribeAck> {
    const projectId = projectIdOf(body);
    if (projectId === null || !this.db) return NOT_FOUND;
    try {
      const rows = (await this.db.query(
        `SELECT 1 FROM project_members m JOIN projects p ON p.id = m.project_id AND p.deleting_at IS NULL
          WHERE m.project_id = $1 AND m.user_id = $2`,
        [projectId, socket.data.user.sub],
      )) as unknown[];
      if (!rows.length || !socket.connected) return NOT_FOUND;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'project subscription not checked');
      return { ok: false, error: 'unavailable' };
    }
    await socket.join(projectRoom(projectId));
    return { ok: true };
  }

  @SubscribeMessage('project:unsubscribe')
  async unsubscribeProject(
    @ConnectedSocket() socket: RealtimeSocket,
    @MessageBody() body: unknown,
  ): Promise<ProjectSubscribeAck> {
    const projectId = projectIdOf(body);
    if (projectId === null) return NOT_FOUND;
    await socket.leave(projectRoom(projectId));
    return { ok: true };
  }

  afterInit(server: RealtimeServer): void {
    server.use((socket, next) => void this.authenticate(socket, next));
    // An ended session or revoked key: its sockets on every api process (through the adapter) go too.
    this.sockets.onEnded((rooms) => server.in(rooms).disconnectSockets(true));
    if (!(server.of('/').adapter instanceof RedisAdapter)) {
      this.logger.warn(
        'Socket.IO runs without the Redis adapter: events published by other processes will not arrive (call useRealtimeAdapter(app) before listen)',
      );
    }
  }

  handleConnection(socket: RealtimeSocket): void {
    // Everything synchronous first, so no packet and no disconnect can slip in before it is set up.
    this.guardAgainstFlooding(socket);
    this.disconnectAtExpiry(socket);
    void socket.join(userRoom(socket.data.user.sub));
    if (socket.data.credentialRoom) void socket.join(socket.data.credentialRoom);
    void this.sendStatus(socket);
  }

  private async authenticate(socket: RealtimeSocket, next: (err?: ExtendedError) => void): Promise<void> {
    try {
      const credentials = handshakeCredentials(socket.handshake);
      const verified = credentials ? await this.sockets.authenticate(credentials, socket.handshake.address) : null;
      if (!verified) return next(new Error('unauthorized'));
      socket.data.user = verified.user;
      socket.data.exp = verified.exp;
      socket.data.credentialRoom = verified.credentialRoom;
      next();
    } catch {
      next(new Error('unauthorized'));
    }
  }

  private async sendStatus(socket: RealtimeSocket): Promise<void> {
    let snapshot: MlStatusSnapshot;
    try {
      snapshot = await withTimeout(this.status.current(), STATUS_READ_TIMEOUT_MS, 'ml status read timed out');
    } catch (err) {
      this.logger.debug(
        { err: err instanceof Error ? err.message : String(err) },
        'ml status unavailable on connect',
      );
      snapshot = UNKNOWN_STATUS;
    }
    if (socket.connected) socket.emit('ml:status', { state: snapshot.state, available: snapshot.available });
  }

  private disconnectAtExpiry(socket: RealtimeSocket): void {
    const exp = socket.data.exp;
    if (exp === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const check = () => {
      const left = exp * 1000 - Date.now();
      if (left <= 0) {
        socket.disconnect(true);
        return;
      }
      timer = setTimeout(check, Math.min(left, MAX_TIMER_MS));
      timer.unref();
    };
    socket.once('disconnect', () => clearTimeout(timer));
    check();
  }

  private guardAgainstFlooding(socket: RealtimeSocket): void {
    let windowStart = Date.now();
    let count = 0;
    socket.use((_packet, next) => {
      const now = Date.now();
      if (now - windowStart >= 1000) {
        windowStart = now;
        count = 0;
      }
      if (++count > SOCKET_FLOOD_MAX_PACKETS_PER_SECOND) {
        if (socket.connected) {
          this.floodWarner.warn({ userId: socket.data.user.sub }, 'socket disconnected for flooding');
          socket.disconnect(true);
        }
        return; // dropped: never passed on
      }
      next();
    });
  }
}
