import { connect } from 'node:net';

/** What came back for one raw request; `answered` is false when nothing arrived before the timeout. */
export interface RawAnswer {
  answered: boolean;
  status?: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends one complete HTTP/1.1 request byte for byte (the body exactly as given, with its
 * Content-Length) over a fresh loopback connection and waits up to `timeoutMs` for the whole answer.
 * Unlike fetch it sends malformed bodies and headers as they are, and tells "never answered" apart.
 */
export function rawRequest(
  baseUrl: string,
  opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number },
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.from(opts.body);
  const headers: Record<string, string> = { host: url.host, connection: 'close', ...opts.headers };
  if (body.length > 0 || !['GET', 'HEAD'].includes(opts.method)) headers['content-length'] = String(body.length);
  const head = `${opts.method} ${opts.path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(Buffer.concat(chunks)));
    };
    const timer = setTimeout(() => {
      settled = true;
      socket.destroy();
      resolve({ answered: false, headers: {}, body: '' });
    }, opts.timeoutMs ?? 10_000);
    socket.on('data', (c) => {
      chunks.push(c);
      const a = parseAnswer(Buffer.concat(chunks));
      // A whole answer (headers and Content-Length bytes of body) ends the wait early.
      if (a.answered && a.headers['content-length'] !== undefined && Buffer.byteLength(a.body) >= Number(a.headers['content-length'])) finish();
    });
    socket.on('end', finish);
    socket.on('error', finish);
    socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  });
}

function parseAnswer(buf: Buffer): RawAnswer {
  const text = buf.toString('utf8');
  const sep = text.indexOf('\r\n\r\n');
  if (sep < 0) return { answered: false, headers: {}, body: '' };
  const [statusLine, ...lines] = text.slice(0, sep).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { answered: !!m, status: m ? Number(m[1]) : undefined, headers, body: text.slice(sep + 4) };
}

/** A multipart/form-data body with one part; `close: false` leaves out the closing boundary. */
export function multipartBody(
  boundary: string,
  part: { field?: string; disposition?: string; contentType?: string; data: Buffer },
  close = true,
): Buffer {
  const disposition = part.disposition ?? `form-data; name="${part.field ?? 'file'}"; filename="image.png"`;
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`,
      'latin1',
    ),
    part.data,
    Buffer.from(close ? `\r\n--${boundary}--\r\n` : '\r\n', 'latin1'),
  ]);
}
