import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * How the proxy in front of the store behaves: `pass` forwards; `refuse` drops every connection (a store
 * that cannot be reached); `hang` accepts and never answers; `quota` refuses writes (PUT, and POST
 * `?uploads`) with the `QuotaExceeded` error an S3-compatible store gives over its quota.
 */
export type S3Mode = 'pass' | 'refuse' | 'hang' | 'quota';

export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const CHILD = `
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({ port: Number(process.env.S3RVER_PORT), address: '127.0.0.1', silent: true, directory: process.env.S3RVER_DIR });
server.run().then(() => process.stdout.write('ready\\n'), (err) => { console.error(err); process.exit(1); });
`;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/**
 * A real S3-compatible server for tests: s3rver (a devDependency) in a child process of its own, on
 * 127.0.0.1, with a data directory that survives {@link kill} + {@link restart} (a store that crashes
 * and comes back), behind an in-process HTTP proxy that clients use ({@link endpoint}) and that can
 * simulate an unreachable, hanging or full store ({@link mode}). Requests are forwarded byte for byte
 * with their Host header, so SigV4 signatures (and presigned links) verify at s3rver.
 */
export class S3TestServer {
  readonly dir = mkdtempSync(path.join(tmpdir(), 's3rver-'));
  mode: S3Mode = 'pass';
  /** Bytes of PUT/POST bodies forwarded to the store so far. */
  uploadedBytes = 0;
  private child?: ChildProcess;
  private backendPort = 0;
  private proxy?: http.Server;
  private proxyPort = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly watchers: Array<{ bytes: number; resolve: () => void }> = [];

  get endpoint(): string {
    return `http://127.0.0.1:${this.proxyPort}`;
  }

  /** Env of an app that stores in `bucket` of this server. */
  env(bucket: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: this.endpoint,
      S3_BUCKET: bucket,
      S3_REGION: 'us-east-1',
      S3_ACCESS_KEY_ID: S3_TEST_CREDENTIALS.accessKeyId,
      S3_SECRET_ACCESS_KEY: S3_TEST_CREDENTIALS.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
      ...extra,
    };
  }

  async start(): Promise<this> {
    this.backendPort = await freePort();
    await this.startBackend();
    this.proxy = http.createServer((req, res) => this.forward(req, res));
    this.proxy.keepAliveTimeout = 1000;
    this.proxy.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.proxy!.listen(0, '127.0.0.1', resolve));
    this.proxyPort = (this.proxy.address() as net.AddressInfo).port;
    return this;
  }

  /** SIGKILLs the store (as a crash would) and drops every open connection to it. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    for (const s of this.sockets) s.destroy();
  }

  /** Starts the store again on the same port and data directory. */
  async restart(): Promise<void> {
    await this.startBackend();
  }

  /** Resolves once at least `bytes` of upload bodies have gone through (counting from now). */
  whenUploaded(bytes: number): Promise<void> {
    const target = this.uploadedBytes + bytes;
    return new Promise((resolve) => this.watchers.push({ bytes: target, resolve }));
  }

  /** A client for assertions (checksums only when required, as the app's). */
  client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3_TEST_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Every key in `bucket` (none when the bucket does not exist). */
  async keys(bucket: string): Promise<string[]> {
    const client = this.client();
    const keys: string[] = [];
    try {
      let token: string | undefined;
      do {
        const out = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = out.IsTruncated ? out.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchBucket') throw err;
    } finally {
      client.destroy();
    }
    return keys.sort();
  }

  async stop(): Promise<void> {
    this.mode = 'pass';
    await this.kill();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.proxy ? this.proxy.close(() => resolve()) : resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async startBackend(): Promise<void> {
    const child = spawn(process.execPath, ['-e', CHILD], {
      env: {
        PATH: process.env.PATH,
        S3RVER_MODULE: require.resolve('s3rver'),
        S3RVER_PORT: String(this.backendPort),
        S3RVER_DIR: this.dir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`s3rver exited (${code}): ${stderr.slice(0, 500)}`)));
    });
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.mode === 'refuse') {
      req.socket.destroy();
      return;
    }
    if (this.mode === 'hang') return; // the socket is destroyed by kill()/stop() or the client's timeout
    const isWrite =
      req.method === 'PUT' || (req.method === 'POST' && /[?&]uploads(=|&|$)/.test(req.url ?? ''));
    if (this.mode === 'quota' && isWrite) {
      req.resume();
      req.on('end', () => {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>QuotaExceeded</Code><Message>Bucket quota exceeded</Message></Error>',
        );
      });
      return;
    }
    const up = http.request(
      { host: '127.0.0.1', port: this.backendPort, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
        r.on('error', () => res.destroy());
      },
    );
    up.on('error', () => req.socket.destroy());
    if (req.method === 'PUT' || req.method === 'POST') {
      req.on('data', (chunk: Buffer) => {
        this.uploadedBytes += chunk.length;
        for (let i = this.watchers.length - 1; i >= 0; i--) {
          if (this.uploadedBytes >= this.watchers[i].bytes) this.watchers.splice(i, 1)[0].resolve();
        }
      });
    }
    req.pipe(up);
  }
}
