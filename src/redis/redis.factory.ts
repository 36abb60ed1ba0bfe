import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import Redis, { Cluster, RedisOptions } from 'ioredis';
import { redisConfig } from '../config/configuration';
import { redactSecrets } from '../common/redact';
import { shareScriptMethods } from './script-pipelines';

export type RedisClient = Redis | Cluster;

/**
 * The one place every Redis client of the service is made (Bull, Socket.IO adapter and emitter,
 * rate limiting, health). Single node from REDIS_URL; Cluster and Sentinel topologies plug in here.
 * Clients made here are closed on shutdown.
 */
@Injectable()
export class RedisFactory implements OnApplicationShutdown {
  private readonly logger = new Logger(RedisFactory.name);
  private readonly clients = new Set<RedisClient>();
  private readonly sharedClients = new Map<string, RedisClient>();

  constructor(@Inject(redisConfig.KEY) private readonly cfg: ConfigType<typeof redisConfig>) {}

  /** Options for a single-node (or Sentinel) client; `extra` wins. */
  nodeOptions(extra: RedisOptions = {}): RedisOptions {
    const u = new URL(this.cfg.url);
    const base: RedisOptions = {
      host: u.hostname,
      port: Number(u.port || 6379),
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      db: u.pathname && u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
      tls: u.protocol === 'rediss:' ? {} : undefined,
    };
    if (this.cfg.sentinels.length > 0) {
      base.sentinels = this.cfg.sentinels.map((hp) => {
        const [host, port] = hp.split(':');
        return { host, port: Number(port || 26379) };
      });
      base.name = this.cfg.sentinelName;
      delete base.host;
      delete base.port;
    }
    return { ...base, ...extra };
  }

  /**
   * A new client for `purpose` (a label for logs). Errors are logged without credentials and never
   * crash the process; ioredis reconnects on its own.
   */
  create(purpose: string, extra: RedisOptions = {}): RedisClient {
    const client: RedisClient = this.cfg.clusterNodes.length > 0 ? this.cluster(extra) : new Redis(this.nodeOptions(extra));
    shareScriptMethods(client); // its ~30 scripts (Bull's and ours) are not copied into every (auto-)pipeline
    this.track(purpose, client);
    return client;
  }

  /**
   * One client per `purpose` for the whole process, made on first use: for connections several users
   * may share (e.g. the command and subscriber connections of every Bull band queue).
   */
  shared(purpose: string, extra: RedisOptions = {}): RedisClient {
    let client = this.sharedClients.get(purpose);
    if (!client) {
      client = this.create(purpose, extra);
      client.setMaxListeners(0); // each sharing queue adds its own error/message listeners
      this.sharedClients.set(purpose, client);
      client.once('end', () => this.sharedClients.delete(purpose));
    }
    return client;
  }

  /**
   * The process's one connection for plain commands (auto-pipelined: the commands of one tick leave in
   * one write): Bull's command client for every queue, and the Socket.IO emitter's PUBLISH. A worker's
   * `segmentation:completed` event and the job's completion in Bull are issued in the same tick, so they
   * share one write and one wake-up of Redis instead of one each on two connections.
   */
  commands(): RedisClient {
    return this.shared('commands', { enableAutoPipelining: true });
  }

  /** True when REDIS_CLUSTER_NODES is set. */
  get isCluster(): boolean {
    return this.cfg.clusterNodes.length > 0;
  }

  /** A Redis Cluster client from REDIS_CLUSTER_NODES; credentials and TLS come from REDIS_URL. */
  private cluster(extra: RedisOptions): Cluster {
    const nodes = this.cfg.clusterNodes.map((hp) => {
      const [host, port] = hp.split(':');
      return { host, port: Number(port || 6379) };
    });
    const { host: _h, port: _p, db: _db, sentinels: _s, name: _n, keyPrefix, enableOfflineQueue, enableReadyCheck, ...redisOptions } =
      this.nodeOptions(extra);
    return new Cluster(nodes, {
      redisOptions,
      keyPrefix,
      enableOfflineQueue: enableOfflineQueue ?? true,
      enableReadyCheck: enableReadyCheck ?? true,
      slotsRefreshTimeout: 2000,
    });
  }

  track(purpose: string, client: RedisClient): RedisClient {
    let lastLogged = 0;
    client.on('error', (err: Error) => {
      const now = Date.now();
      if (now - lastLogged < 5000) return; // a down Redis emits an error per retry: log at most every 5 s
      lastLogged = now;
      this.logger.warn({ purpose, err: redactSecrets(err.message) }, 'redis client error');
    });
    this.clients.add(client);
    client.once('end', () => this.clients.delete(client));
    return client;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(
      [...this.clients].map(async (c) => {
        try {
          await c.quit();
        } catch {
          c.disconnect();
        }
      }),
    );
  }
}
