/**
 * A TCP proxy in front of a real Redis that can silently drop pub/sub
 * messages on their way to the clients behind it: what a middlebox, a
 * client bug or a Cluster bus link that reconnected does to an instance.
 * Everything else passes byte for byte. Once a connection has sent
 * SUBSCRIBE, the server's replies on it are cut into RESP frames; a
 * `message` push whose payload `drop` selects is not forwarded (nothing
 * closes, no error: the subscriber just never sees it).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

const CRLF = 0x0d;

/** End offset of the RESP2/RESP3 frame starting at `pos`, or -1 while incomplete. */
function frameEnd(buf: Buffer, pos: number): number {
  if (pos >= buf.length) return -1;
  const line = buf.indexOf(CRLF, pos);
  if (line < 0 || line + 1 >= buf.length) return -1;
  const type = String.fromCharCode(buf[pos]!);
  const n = Number(buf.toString('latin1', pos + 1, line));
  const after = line + 2;
  switch (type) {
    case '$': case '=': case '!':
      if (n < 0) return after;
      return after + n + 2 <= buf.length ? after + n + 2 : -1;
    case '*': case '>': case '~': case '%': case '|': {
      let end = after;
      const items = n < 0 ? 0 : type === '%' || type === '|' ? 2 * n : n;
      for (let i = 0; i < items; i++) {
        end = frameEnd(buf, end);
        if (end < 0) return -1;
      }
      return end;
    }
    default:
      return after;
  }
}

/** The payload of a `message` push frame (`*3`/`>3`: message, channel, payload), else undefined. */
function messagePayload(frame: Buffer): string | undefined {
  if ((frame[0] !== 0x2a && frame[0] !== 0x3e) || frame[1] !== 0x33) return undefined;
  const bulks: string[] = [];
  let pos = frame.indexOf(CRLF) + 2;
  for (let i = 0; i < 3; i++) {
    if (frame[pos] !== 0x24) return undefined;
    const line = frame.indexOf(CRLF, pos);
    const len = Number(frame.toString('latin1', pos + 1, line));
    bulks.push(frame.toString('utf8', line + 2, line + 2 + len));
    pos = line + 2 + len + 2;
  }
  return bulks[0] === 'message' ? bulks[2] : undefined;
}

export class PubSubProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Which message payloads to drop now; `undefined`: none. */
  drop: ((payload: string) => boolean) | undefined;
  /** Messages dropped so far. */
  dropped = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Starts a proxy on a free port of 127.0.0.1 in front of `target`. */
  static async start(target: { host: string; port: number }): Promise<PubSubProxy> {
    const server = createServer();
    const proxy = new PubSubProxy(server);
    server.on('connection', (client) => proxy.#pipe(client, target));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  #pipe(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host);
    this.#sockets.add(client).add(upstream);
    let subscribed = false;
    let pending: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (!subscribed && /subscribe/i.test(chunk.toString('latin1'))) subscribed = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!subscribed) {
        client.write(chunk);
        return;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let pos = 0;
      const out: Buffer[] = [];
      for (;;) {
        const end = frameEnd(pending, pos);
        if (end < 0) break;
        const frame = pending.subarray(pos, end);
        const payload = this.drop === undefined ? undefined : messagePayload(frame);
        if (payload !== undefined && this.drop!(payload)) this.dropped++;
        else out.push(frame);
        pos = end;
      }
      pending = pending.subarray(pos);
      if (out.length > 0) client.write(Buffer.concat(out));
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
