/**
 * Soak: drives many users against the example server (bench/soak-server.ts,
 * a child process started with --expose-gc) for a while and records its
 * memory after a full GC over time.
 *
 *   npm run soak -- [--minutes 10] [--users 10000] [--concurrency 32]
 *                   [--csv docs/soak.csv] [--svg docs/soak.svg] [--warmup 0.2]
 *
 * Every request is checked: a response naming another user, a 409
 * configuration_mismatch (a torn configuration) or a 5xx counts as a failure.
 * Prints a JSON summary; exits 1 on any failure or if memory after warm-up
 * drifts by more than ±10 %.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSecretKey, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import jwt from 'jsonwebtoken';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface SoakOptions {
  /** How long to drive load, in ms. */
  durationMs: number;
  /** Distinct users (one token each). @default 10_000 */
  users?: number;
  /** Requests in flight at once. @default 32 */
  concurrency?: number;
  /** Interval between memory samples, in ms. @default max(1000, durationMs / 150) */
  sampleMs?: number;
  /** Fraction of the run treated as warm-up (excluded from the figures). @default 0.2 */
  warmup?: number;
  /** Where to write the CSV, if anywhere. */
  csv?: string;
  /** Where to write the SVG plot, if anywhere. */
  svg?: string;
  /** Called with each sample as it arrives. */
  onSample?: (sample: Sample) => void;
}

export interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  users: number;
  requests: number;
}

export interface SeriesStats {
  min: number;
  max: number;
  mean: number;
  /** Largest distance from the mean, relative to it. */
  spread: number;
  /** Least-squares slope, bytes per minute. */
  slopePerMin: number;
  /** Fitted change over the post-warm-up window, relative to the mean. */
  drift: number;
}

export interface SoakResult {
  durationMs: number;
  users: number;
  requests: number;
  reqPerSec: number;
  /** Non-2xx or wrong answers, by kind. */
  failures: Record<string, number>;
  failureCount: number;
  samples: Sample[];
  warmupMs: number;
  rss: SeriesStats;
  heapUsed: SeriesStats;
  usersInStore: number;
}

const MODELS: ReadonlyArray<readonly [string, string]> = [
  ['Google', 'gemini-2.5-flash'],
  ['Anthropic', 'claude-3-5-haiku'],
  ['OpenAI', 'gpt-4o-mini'],
  ['Ollama', 'llama3.1'],
  ['Amazon', 'nova-lite'],
];

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const { durationMs, users = 10_000, concurrency = 32, warmup = 0.2 } = options;
  const sampleMs = options.sampleMs ?? Math.max(1000, Math.floor(durationMs / 150));
  const secret = randomBytes(48).toString('base64url');
  const key = createSecretKey(Buffer.from(secret, 'utf8'));
  const expiresIn = Math.ceil(durationMs / 1000) + 3600;
  const ids = Array.from({ length: users }, () => randomUUID());
  const tokens = ids.map((sub) => jwt.sign({ sub }, key, { algorithm: 'HS256', expiresIn }));
  const configured = new Array<boolean>(users).fill(false);

  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/soak-server.ts'], {
    cwd: ROOT,
    env: { ...process.env, JWT_SECRET: secret, NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  try {
    const port = await waitFor<{ port: number }>(child, 'ready', 30_000);
    const failures: Record<string, number> = {};
    const fail = (kind: string): void => {
      failures[kind] = (failures[kind] ?? 0) + 1;
    };
    let requests = 0;
    const start = Date.now();
    const deadline = start + durationMs;

    const one = async (): Promise<void> => {
      const i = Math.floor(Math.random() * users);
      const user = ids[i]!;
      const auth = `Bearer ${tokens[i]!}`;
      const r = Math.random();
      if (!configured[i] || r >= 0.92) {
        const [provider, model] = MODELS[Math.floor(Math.random() * MODELS.length)]!;
        const res = await call(agent, port.port, 'POST', '/configure', auth, { provider, model });
        check(res, user, fail);
        // Only once the write is acknowledged: a query racing the first configure gets 409 not_configured.
        if (res.status === 200) configured[i] = true;
      } else if (r < 0.77) {
        const res = await call(agent, port.port, 'POST', '/query', auth, { prompt: `soak query ${requests}` });
        check(res, user, fail);
      } else {
        const res = await call(agent, port.port, 'GET', '/me/context', auth);
        if (res.status !== 200) fail(`status_${res.status}`);
        else if ((res.body as { userUuid?: unknown }).userUuid !== user) fail('cross_user');
      }
      requests++;
    };
    const worker = async (): Promise<void> => {
      while (Date.now() < deadline) {
        try {
          await one();
        } catch (error) {
          fail(`transport_${(error as NodeJS.ErrnoException).code ?? 'error'}`);
        }
      }
    };

    const samples: Sample[] = [];
    const takeSample = async (): Promise<void> => {
      child.send({ type: 'sample' });
      const m = await waitFor<Omit<Sample, 't' | 'requests'> & { failures: number }>(child, 'sample', 30_000);
      if (m.failures > 0) failures['server_error_events'] = m.failures;
      const sample: Sample = {
        t: Date.now() - start,
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        users: m.users,
        requests,
      };
      samples.push(sample);
      options.onSample?.(sample);
    };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await takeSample();
        await sleep(Math.min(sampleMs, Math.max(0, deadline - Date.now())));
        if (Date.now() >= deadline) break;
      }
    })();
    await Promise.all(Array.from({ length: concurrency }, worker));
    sampling = false;
    await sampler;
    await takeSample();
    const elapsed = Date.now() - start;

    const warmupMs = Math.floor(durationMs * warmup);
    const steady = samples.filter((s) => s.t >= warmupMs);
    const result: SoakResult = {
      durationMs: elapsed,
      users,
      requests,
      reqPerSec: Math.round((requests / elapsed) * 1000),
      failures,
      failureCount: Object.values(failures).reduce((a, b) => a + b, 0),
      samples,
      warmupMs,
      rss: stats(steady, (s) => s.rss),
      heapUsed: stats(steady, (s) => s.heapUsed),
      usersInStore: samples.at(-1)?.users ?? 0,
    };
    if (options.csv !== undefined) writeOut(options.csv, toCsv(samples));
    if (options.svg !== undefined) writeOut(options.svg, toSvg(result));
    return result;
  } finally {
    agent.destroy();
    if (child.connected) child.send({ type: 'stop' });
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(6000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

interface Reply {
  status: number;
  body: unknown;
}

function check(res: Reply, user: string, fail: (kind: string) => void): void {
  const body = res.body as { user?: unknown; error?: unknown };
  if (res.status === 409 && body.error === 'configuration_mismatch') fail('torn_configuration');
  else if (res.status !== 200) fail(`status_${res.status}${typeof body.error === 'string' ? `_${body.error}` : ''}`);
  else if (body.user !== user) fail('cross_user');
}

function call(agent: http.Agent, port: number, method: string, path: string, auth: string, json?: unknown): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const payload = json === undefined ? undefined : JSON.stringify(json);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          authorization: auth,
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: unknown = null;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = null;
          }
          resolvePromise({ status: res.statusCode ?? 0, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function waitFor<T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => done(new Error(`soak-server sent no "${type}" within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (msg: { type?: string }): void => {
      if (msg?.type === type) done(undefined, msg as T);
    };
    const onExit = (code: number | null): void => done(new Error(`soak-server exited (code ${code}) before "${type}"`));
    function done(error: Error | undefined, value?: T): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (error !== undefined) reject(error);
      else resolvePromise(value as T);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** Summary statistics and least-squares trend of one series. */
export function stats(samples: readonly Sample[], pick: (s: Sample) => number): SeriesStats {
  const n = samples.length;
  if (n === 0) return { min: 0, max: 0, mean: 0, spread: 0, slopePerMin: 0, drift: 0 };
  const xs = samples.map((s) => s.t / 60_000);
  const ys = samples.map(pick);
  const mean = ys.reduce((a, b) => a + b, 0) / n;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - mean);
    den += (xs[i]! - mx) ** 2;
  }
  const slopePerMin = den === 0 ? 0 : num / den;
  const min = Math.min(...ys);
  const max = Math.max(...ys);
  const window = xs[n - 1]! - xs[0]!;
  return {
    min,
    max,
    mean,
    spread: Math.max(max - mean, mean - min) / mean,
    slopePerMin,
    drift: (slopePerMin * window) / mean,
  };
}

function toCsv(samples: readonly Sample[]): string {
  const mb = (n: number): string => (n / 1048576).toFixed(2);
  const lines = ['elapsed_s,rss_mb,heap_used_mb,heap_total_mb,external_mb,users_in_store,requests'];
  for (const s of samples) {
    lines.push([(s.t / 1000).toFixed(1), mb(s.rss), mb(s.heapUsed), mb(s.heapTotal), mb(s.external), s.users, s.requests].join(','));
  }
  return `${lines.join('\n')}\n`;
}

function toSvg(result: SoakResult): string {
  const W = 800;
  const H = 420;
  const L = 60;
  const R = 20;
  const T = 40;
  const B = 50;
  const s = result.samples;
  const tMax = Math.max(1, s.at(-1)?.t ?? 1);
  const yMax = Math.max(1, ...s.map((x) => x.rss)) * 1.1;
  const x = (t: number): number => L + ((W - L - R) * t) / tMax;
  const y = (v: number): number => H - B - ((H - T - B) * v) / yMax;
  const line = (pick: (p: Sample) => number): string =>
    s.map((p) => `${x(p.t).toFixed(1)},${y(pick(p)).toFixed(1)}`).join(' ');
  const yTicks: string[] = [];
  const step = niceStep(yMax / 1048576 / 5);
  for (let v = 0; v * 1048576 <= yMax; v += step) {
    const yy = y(v * 1048576).toFixed(1);
    yTicks.push(`<line x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}" stroke="#eee"/>` +
      `<text x="${L - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${v}</text>`);
  }
  const xTicks: string[] = [];
  const minutes = tMax / 60_000;
  const xStep = niceStep(minutes / 6);
  for (let m = 0; m <= minutes + 1e-9; m += xStep) {
    const xx = x(m * 60_000).toFixed(1);
    xTicks.push(`<text x="${xx}" y="${H - B + 18}" text-anchor="middle">${+m.toFixed(2)}</text>`);
  }
  const wx = x(result.warmupMs).toFixed(1);
  const title = `soak: ${result.users} users, ${result.requests} requests (${result.reqPerSec} req/s), ` +
    `RSS ±${(result.rss.spread * 100).toFixed(1)} %, heap ±${(result.heapUsed.spread * 100).toFixed(1)} % after warm-up`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="13">${title}</text>
${yTicks.join('\n')}
${xTicks.join('\n')}
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#000"/>
<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#000"/>
<line x1="${wx}" y1="${T}" x2="${wx}" y2="${H - B}" stroke="#999" stroke-dasharray="4 4"/>
<text x="${wx}" y="${T - 4}" text-anchor="middle" fill="#666">end of warm-up</text>
<polyline fill="none" stroke="#d62728" stroke-width="1.5" points="${line((p) => p.rss)}"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line((p) => p.heapUsed)}"/>
<text x="${W / 2}" y="${H - 12}" text-anchor="middle">minutes</text>
<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">MiB (after full GC)</text>
<text x="${W - R - 150}" y="${T + 14}" fill="#d62728">— RSS</text>
<text x="${W - R - 150}" y="${T + 30}" fill="#1f77b4">— heapUsed</text>
</svg>
`;
}

function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

function writeOut(path: string, text: string): void {
  const full = resolve(ROOT, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '1' },
      users: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '0.2' },
      csv: { type: 'string', default: 'docs/soak.csv' },
      svg: { type: 'string', default: 'docs/soak.svg' },
    },
  });
  const minutes = Number(values.minutes);
  const users = Number(values.users);
  const concurrency = Number(values.concurrency);
  const warmup = Number(values.warmup);
  if (!(minutes > 0)) throw new TypeError('--minutes must be a positive number');
  if (!Number.isInteger(users) || users < 1) throw new TypeError('--users must be a positive integer');
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError('--concurrency must be a positive integer');
  if (!(warmup >= 0 && warmup < 1)) throw new TypeError('--warmup must be a fraction in [0, 1)');
  const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  const result = await runSoak({
    durationMs: minutes * 60_000,
    users,
    concurrency,
    warmup,
    csv: values.csv,
    svg: values.svg,
    onSample: (s) =>
      console.error(`t=${(s.t / 1000).toFixed(0)}s rss=${mb(s.rss)} heapUsed=${mb(s.heapUsed)} users=${s.users} requests=${s.requests}`),
  });
  const { samples, ...summary } = result;
  console.log(JSON.stringify({ ...summary, sampleCount: samples.length, csv: values.csv, svg: values.svg }, null, 2));
  const flat = result.rss.spread <= 0.1 && result.heapUsed.spread <= 0.1;
  if (result.failureCount > 0 || !flat) process.exitCode = 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
