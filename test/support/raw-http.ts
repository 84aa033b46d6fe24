/**
 * A raw HTTP/1.1 client over a TCP socket, for requests no well-behaved
 * client sends: duplicated or oversized headers, odd bytes.
 */
import * as net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: unknown;
  text: string;
}

/** Sends `GET path` with the given header lines (each `[name, value]`, sent as is). */
export function rawRequest(port: number, path: string, headers: ReadonlyArray<readonly [string, string]>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // The server may reset the connection after answering an oversized request.
      if (error.code === 'ECONNRESET' && chunks.length > 0) finish();
      else reject(error);
    });
    socket.on('end', finish);
    let done = false;
    function finish(): void {
      if (done) return;
      done = true;
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      const lines = head.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const map = new Map<string, string>();
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) map.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      let body = split < 0 ? '' : text.slice(split + 4);
      if (/chunked/i.test(map.get('transfer-encoding') ?? '')) body = unchunk(body);
      let json: unknown;
      try {
        json = JSON.parse(Buffer.from(body, 'latin1').toString('utf8'));
      } catch {
        json = undefined;
      }
      resolve({ status, headers: map, body: json, text: body });
    }
    const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [name, value] of headers) lines.push(`${name}: ${value}`);
    socket.write(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  });
}

function unchunk(body: string): string {
  let out = '';
  let rest = body;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
