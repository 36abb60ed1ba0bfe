import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Emitter } from '@socket.io/redis-emitter';
import { queueConfig } from '../config/configuration';
import {
  MlStatusSnapshot,
  Publication,
  projectRoom,
  ServerEventPayload,
  TaskEventTarget,
  UserEventName,
  userRoom,
} from '../common/contracts';
import { redactSecrets } from '../common/redact';
import { RedisClient, RedisFactory } from '../redis/redis.factory';
import { socketIoKey } from './realtime.constants';
import { RateLimitedWarner } from './rate-limited-logger';

/**
 * Sends Socket.IO events (CONTRACT §6) from any process: `api`, `worker` or `all`. There is one code
 * path for every role: events are published to Redis with `@socket.io/redis-emitter` on the channel
 * key of this deployment (`socket.io#<QUEUE_NAME>`), and every `api` process's Redis adapter delivers
 * them to the sockets it holds. Events published from one process keep their order (one connection:
 * the process's command connection, shared with Bull, see RedisFactory.commands).
 *
 * Best-effort: publishing never throws into the caller and never blocks it. While Redis is
 * unreachable events wait in the client's offline queue, as Bull's commands do, and are dropped with a
 * (rate-limited) warning once the client gives up on them (ioredis' maxRetriesPerRequest).
 */
@Injectable()
export class RealtimePublisher implements OnApplicationShutdown {
  private readonly logger = new Logger(RealtimePublisher.name);
  private readonly warner = new RateLimitedWarner(this.logger);
  private readonly client: RedisClient;
  private readonly emitter: Emitter;
  /** The same emitter over a sink that keeps the last message instead of sending it (taskEventPublication). */
  private readonly encoder: Emitter;
  private encoded?: Publication;
  private stopped = false;

  constructor(redis: RedisFactory, @Inject(queueConfig.KEY) queue: ConfigType<typeof queueConfig>) {
    // The process's command connection, Bull's too (RedisFactory.commands): an event and the Bull
    // commands of the same tick (a job's completion) leave in one write.
    this.client = redis.commands();
    // The emitter calls `publish` without handling its promise: give it a sink that does.
    const sink = {
      publish: (channel: string, message: string | Buffer): Promise<unknown> =>
        this.client.publish(channel, message).catch((err: unknown) => this.dropped(err)),
    };
    this.emitter = new Emitter(sink, { key: socketIoKey(queue.name) });
    const keep = { publish: (channel: string, message: Buffer | string) => void (this.encoded = { channel, message }) };
    this.encoder = new Emitter(keep, { key: socketIoKey(queue.name) });
  }

  /** Sends `event` to every socket of `userId`, on whichever api process it is connected to. */
  toUser<E extends UserEventName>(userId: number, event: E, payload: ServerEventPayload<E>): void {
    this.emit(userRoom(userId), event, payload);
  }

  /**
   * Sends an event of `task` to the user who queued it and, when its image is in a project, to the
   * project's room (with `projectId` in the payload); a socket in both rooms gets it once.
   */
  toTask<E extends UserEventName>(
    task: TaskEventTarget,
    event: E,
    payload: Omit<ServerEventPayload<E>, 'taskId' | 'imageId' | 'projectId'>,
  ): void {
    if (this.stopped) return;
    try {
      this.emitTask(this.emitter, task, event, payload);
    } catch (err) {
      this.dropped(err);
    }
  }

  /**
   * The message {@link toTask} would publish, encoded but not sent: for a caller that sends it with its
   * own Redis commands in one round trip (the `segmentation:queued` events go with their jobs).
   * Undefined once shut down or when the payload cannot be encoded.
   */
  taskEventPublication<E extends UserEventName>(
    task: TaskEventTarget,
    event: E,
    payload: Omit<ServerEventPayload<E>, 'taskId' | 'imageId' | 'projectId'>,
  ): Publication | undefined {
    if (this.stopped) return undefined;
    this.encoded = undefined;
    try {
      this.emitTask(this.encoder, task, event, payload);
    } catch (err) {
      this.dropped(err);
    }
    const out = this.encoded;
    this.encoded = undefined;
    return out;
  }

  /**
   * An event of `task` to the user who queued it and, when its image is in a project, to the project's
   * room (with `projectId` in the payload); a socket in both rooms gets it once.
   */
  private emitTask(
    via: Emitter,
    task: TaskEventTarget,
    event: string,
    payload: object,
  ): void {
    const pid = task.projectId ?? null;
    const body = {
      taskId: task.taskId,
      imageId: task.imageId,
      ...(pid !== null ? { projectId: pid } : {}),
      ...payload,
    };
    const target = pid !== null ? via.to(userRoom(task.userId)).to(projectRoom(pid)) : via.to(userRoom(task.userId));
    target.emit(event, body);
  }

  /**
   * Sends an event about an image to its uploader and, when the image is in a project, to the
   * project's room (a socket in both gets it once).
   */
  toImage<E extends UserEventName>(
    image: { userId: number; projectId?: number | null },
    event: E,
    payload: ServerEventPayload<E>,
  ): void {
    if (this.stopped) return;
    const pid = image.projectId ?? null;
    try {
      const target =
        pid !== null
          ? this.emitter.to(userRoom(image.userId)).to(projectRoom(pid))
          : this.emitter.to(userRoom(image.userId));
      target.emit(event, payload);
    } catch (err) {
      this.dropped(err);
    }
  }

  /**
   * Takes a user's sockets (every api process) out of a project's room: a removed member stops
   * receiving its events at once. With `userId` undefined, every socket leaves (project deleted).
   */
  leaveProject(projectId: number, userId?: number): void {
    if (this.stopped) return;
    try {
      const from =
        userId === undefined ? this.emitter.in(projectRoom(projectId)) : this.emitter.in(userRoom(userId));
      from.socketsLeave(projectRoom(projectId));
    } catch (err) {
      this.dropped(err);
    }
  }

  /** Sends the ML circuit state to every connected socket. */
  broadcastMlStatus(snapshot: MlStatusSnapshot): void {
    this.emit(undefined, 'ml:status', { state: snapshot.state, available: snapshot.available });
  }

  onApplicationShutdown(): void {
    // The client itself is closed by RedisFactory; later events are dropped silently.
    this.stopped = true;
  }

  private emit(room: string | undefined, event: string, payload: unknown): void {
    if (this.stopped) return;
    try {
      const target = room === undefined ? this.emitter : this.emitter.to(room);
      target.emit(event, payload);
    } catch (err) {
      // e.g. a payload the encoder rejects; never the caller's problem.
      this.dropped(err);
    }
  }

  private dropped(err: unknown): void {
    if (this.stopped) return;
    const message = err instanceof Error ? err.message : String(err);
    this.warner.warn({ err: redactSecrets(message) }, 'socket.io event dropped');
  }
}
