/**
 * The HTTP benchmark: every contender's server runs in its own child process,
 * autocannon runs here in the parent. After a warm-up, contenders are measured
 * in alternating rounds (the order rotates every round), so they all share
 * the machine's conditions; a contender's figures are the medians of its
 * rounds and its ratio is the median of its per-round ratios to the baseline
 * measured in the same round.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { Contender } from './contenders.js';
import { FIXTURES_ENV, providerOf, type LoadFixtures } from './fixtures.js';
import type { ServerMessage } from './server.js';

export interface HttpOptions {
  connections: number;
  /** Seconds of warm-up per contender (not recorded). */
  warmup: number;
  /** Seconds per contender per round. */
  duration: number;
  rounds: number;
  /** Extra node flags for the server children (e.g. --cpu-prof). */
  serverExecArgv: string[];
  log: (line: string) => void;
}

export interface RoundSample {
  round: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Server process CPU time (user + system) per completed request, µs. */
  cpuMicrosPerRequest: number;
  /** The user-space part of it (JavaScript, V8, libuv; not the kernel's socket work), µs. */
  userCpuMicrosPerRequest: number;
}

export interface ContenderResult {
  id: string;
  label: string;
  description: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Median over rounds of (this contender's req/s ÷ the baseline's, same round). */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
  /** Median server CPU time per request, µs. */
  cpuMicrosPerRequest: number;
  /** Median user-space CPU time per request, µs. */
  userCpuMicrosPerRequest: number;
  /**
   * Median over rounds of (baseline's CPU per request ÷ this one's): the
   * throughput ratio the contender would reach on an otherwise idle machine
   * where the server is CPU-bound. Much less sensitive to neighbours than req/s.
   */
  cpuRatio: number;
  rounds: RoundSample[];
}

interface Running {
  contender: Contender;
  child: ChildProcess;
  url: string;
}

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

function startServer(contender: Contender, fixtures: LoadFixtures, execArgv: string[]): Promise<Running> {
  const { hsSecret, rsPublicKey, users } = fixtures;
  const child = fork(SERVER, [contender.id], {
    execArgv: ['--import', 'tsx', ...execArgv],
    env: { ...process.env, NODE_ENV: 'production', [FIXTURES_ENV]: JSON.stringify({ hsSecret, rsPublicKey, users }) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${contender.id}: server did not start within 60 s`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${contender.id}: server exited with code ${String(code)} before it was ready`));
    });
    child.once('message', (message: ServerMessage) => {
      clearTimeout(timer);
      if (message.type === 'ready') resolve({ contender, child, url: `http://127.0.0.1:${message.port}` });
      else if (message.type === 'error') reject(new Error(`${contender.id}: ${message.message}`));
      else reject(new Error(`${contender.id}: unexpected first message ${JSON.stringify(message)}`));
    });
  });
}

function tokensOf(contender: Contender, fixtures: LoadFixtures): string[] {
  return contender.tokens === 'rs' ? fixtures.rsTokens : fixtures.hsTokens;
}

/** One real request per user: the server must answer 200 with that user's provider. */
async function checkServer(run: Running, fixtures: LoadFixtures): Promise<void> {
  const tokens = tokensOf(run.contender, fixtures);
  for (const [i, token] of tokens.entries()) {
    const res = await fetch(`${run.url}/whoami`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { user?: string; provider?: string };
    if (res.status !== 200) throw new Error(`${run.contender.id}: GET /whoami answered ${res.status} ${JSON.stringify(body)}`);
    if (run.contender.anonymous === true) continue;
    if (body.user !== fixtures.users[i] || body.provider !== providerOf(i)) {
      throw new Error(`${run.contender.id}: user ${i} got ${JSON.stringify(body)}, expected ${fixtures.users[i]} / ${providerOf(i)}`);
    }
  }
}

interface Load {
  result: autocannon.Result;
  /** Latency of every response in ms, sorted (autocannon's own histogram has 1 ms resolution). */
  latencies: Float64Array;
}

function load(run: Running, fixtures: LoadFixtures, connections: number, seconds: number): Promise<Load> {
  const requests = tokensOf(run.contender, fixtures).map((token) => ({
    method: 'GET' as const,
    path: '/whoami',
    headers: { authorization: `Bearer ${token}` },
  }));
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon({ url: run.url, connections, duration: seconds, requests }, (error, result) => {
      if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve({ result, latencies: latencies.subarray(0, n).sort() });
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (n === latencies.length) {
        const bigger = new Float64Array(n * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[n++] = responseTime;
    });
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The server child's CPU time so far (µs): user + system, and user alone. */
function cpuOf(run: Running): Promise<{ micros: number; userMicros: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${run.contender.id}: no CPU reading within 10 s`)), 10_000);
    const onMessage = (message: ServerMessage): void => {
      if (message.type !== 'cpu') return;
      clearTimeout(timer);
      run.child.off('message', onMessage);
      resolve(message);
    };
    run.child.on('message', onMessage);
    run.child.send({ type: 'cpu' });
  });
}

async function measured(run: Running, fixtures: LoadFixtures, connections: number, seconds: number, round: number): Promise<RoundSample> {
  const before = await cpuOf(run);
  const loaded = await load(run, fixtures, connections, seconds);
  const after = await cpuOf(run);
  return sample(round, loaded, after.micros - before.micros, after.userMicros - before.userMicros);
}

function sample(round: number, { result, latencies }: Load, cpuMicros: number, userMicros: number): RoundSample {
  const ok = result['2xx'];
  return {
    round,
    requestsPerSec: ok / result.duration,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    cpuMicrosPerRequest: cpuMicros / Math.max(1, result.requests.total),
    userCpuMicrosPerRequest: userMicros / Math.max(1, result.requests.total),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export async function runHttp(
  contenders: readonly Contender[],
  baselineId: string,
  fixtures: LoadFixtures,
  options: HttpOptions,
): Promise<ContenderResult[]> {
  const { log } = options;
  if (!contenders.some((c) => c.id === baselineId)) throw new Error(`the baseline "${baselineId}" must be measured`);
  const running: Running[] = [];
  try {
    // Start servers one at a time: tsx's first load is CPU-heavy.
    for (const contender of contenders) running.push(await startServer(contender, fixtures, options.serverExecArgv));
    for (const run of running) await checkServer(run, fixtures);
    log(`servers up: ${running.map((r) => r.contender.id).join(', ')}`);
    if (options.warmup > 0) {
      for (const run of running) {
        await load(run, fixtures, options.connections, options.warmup);
      }
      log(`warmed up (${options.warmup} s each)`);
    }
    const samples = new Map<string, RoundSample[]>(running.map((r) => [r.contender.id, []]));
    for (let round = 0; round < options.rounds; round++) {
      const order = running.map((_, i) => running[(i + round) % running.length]!);
      const line: string[] = [];
      for (const run of order) {
        const s = await measured(run, fixtures, options.connections, options.duration, round);
        if (s.non2xx > 0 || s.errors > 0) {
          throw new Error(`${run.contender.id}: ${s.non2xx} non-2xx responses and ${s.errors} errors in round ${round + 1}`);
        }
        samples.get(run.contender.id)!.push(s);
        line.push(`${run.contender.id} ${Math.round(s.requestsPerSec)}`);
      }
      log(`round ${round + 1}/${options.rounds}: ${line.join(' · ')} req/s`);
    }
    const base = samples.get(baselineId)!;
    return running.map(({ contender }) => {
      const rounds = samples.get(contender.id)!;
      const ratios = rounds.map((s, i) => s.requestsPerSec / base[i]!.requestsPerSec);
      const cpuRatios = rounds.map((s, i) => base[i]!.cpuMicrosPerRequest / s.cpuMicrosPerRequest);
      return {
        id: contender.id,
        label: contender.label,
        description: contender.description,
        requestsPerSec: median(rounds.map((s) => s.requestsPerSec)),
        p50Ms: median(rounds.map((s) => s.p50Ms)),
        p99Ms: median(rounds.map((s) => s.p99Ms)),
        ratio: median(ratios),
        ratioMin: Math.min(...ratios),
        ratioMax: Math.max(...ratios),
        cpuMicrosPerRequest: median(rounds.map((s) => s.cpuMicrosPerRequest)),
        userCpuMicrosPerRequest: median(rounds.map((s) => s.userCpuMicrosPerRequest)),
        cpuRatio: median(cpuRatios),
        rounds,
      };
    });
  } finally {
    await Promise.all(
      running.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.disconnect();
          }),
      ),
    );
  }
}
