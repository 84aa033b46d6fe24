/**
 * The HTTP benchmark: every contender's server runs in its own child process,
 * autocannon runs here in the parent. After a warm-up, contenders are measured
 * in alternating rounds (the order rotates every round), so they all share
 * the machine's conditions; a contender's figures are the medians of its
 * rounds and its ratio is the median of its per-round ratios to the baseline
 * measured in the same round.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { pathOf, type Contender } from './contenders.js';
import { FIXTURES_ENV, providerOf, type LoadFixtures } from './fixtures.js';
import type { ServerMessage } from './server.js';
import { median } from './stats.js';

export interface HttpOptions {
  connections: number;
  /** Seconds of warm-up per contender (not recorded). */
  warmup: number;
  /** Seconds per contender per round. */
  duration: number;
  rounds: number;
  /**
   * Rounds in which each contender runs at the same time as the baseline, both
   * servers on the same CPU (0: none). See {@link PairedResult}.
   */
  pairedRounds: number;
  /** Extra node flags for the server children (e.g. --cpu-prof). */
  serverExecArgv: string[];
  /** CPU the server children are pinned to (with `taskset`; the caller pins itself elsewhere). */
  serverCpu?: number | undefined;
  /**
   * Keep the load generator's event loop from sleeping while servers are loaded
   * ({@link keepAwake}); only with `serverCpu` set (the generator then has a CPU of its own).
   * @default false
   */
  keepAwake?: boolean;
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
  /** The paired measurement against the baseline (absent for the baseline itself, or with no paired rounds). */
  paired?: PairedResult;
}

/**
 * The contender and the baseline loaded at the same time, their servers pinned
 * to the same CPU: the scheduler shares that CPU between them, so both see
 * exactly the same machine (a neighbour slowing the CPU slows both), and the
 * ratio of their throughputs is the ratio of their costs per request. On a
 * shared machine whose speed drifts by tens of percent from second to second
 * this is far steadier than comparing runs taken one after the other.
 */
export interface PairedResult {
  /** Median over paired rounds of (contender's req/s ÷ baseline's req/s, same window). */
  ratio: number;
  ratioMin: number;
  ratioMax: number;
  /** Median over paired rounds of (baseline's CPU/request ÷ contender's, same window). */
  cpuRatio: number;
  /** Median over paired rounds of (contender's CPU/request − baseline's), µs. */
  cpuMicrosAbove: number;
  rounds: { contender: RoundSample; baseline: RoundSample }[];
}

export interface Running {
  contender: Contender;
  child: ChildProcess;
  url: string;
}

const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

/**
 * On a machine with two or more CPUs, the load generator (this process) and
 * the servers get a CPU each: otherwise they compete for the same cores and the
 * ratios swing with the scheduler rather than with the code.
 */
export function pinLoadGenerator(disabled: boolean): { serverCpu: number | undefined; note: string } {
  if (disabled) return { serverCpu: undefined, note: 'not pinned (--no-pin)' };
  if (cpus().length < 2) return { serverCpu: undefined, note: 'not pinned (one CPU)' };
  const self = spawnSync('taskset', ['-a', '-cp', '0', String(process.pid)], { encoding: 'utf8' });
  if (self.status !== 0) return { serverCpu: undefined, note: `not pinned (taskset: ${self.stderr?.trim() || self.error?.message})` };
  return { serverCpu: 1, note: 'load generator pinned to CPU 0, servers to CPU 1 (taskset)' };
}

/** Whether {@link runHttp} keeps the load generator awake with these options: asked for, and pinned. */
export function keepsAwake(options: Pick<HttpOptions, 'keepAwake' | 'serverCpu'>): boolean {
  return options.keepAwake === true && options.serverCpu !== undefined;
}

/** How the load generator runs, as a results file records it: its pinning (`pinNote`) and whether it is kept awake. */
export function describeLoadGenerator(pinNote: string, options: Pick<HttpOptions, 'keepAwake' | 'serverCpu'>): string {
  return `${pinNote}; ${keepsAwake(options) ? 'kept awake (bench/http.ts keepAwake)' : 'sleeping in epoll_wait between responses'}`;
}

/**
 * Keeps this process's event loop from sleeping in epoll_wait until the returned function is called: a
 * `setImmediate` loop, so libuv polls without a timeout and the load generator spins on its own CPU.
 *
 * Why: on one machine a response written while the load generator sleeps wakes it from inside the
 * server's write(2): the loopback delivers the segment there and calls sock_def_readable →
 * try_to_wake_up, an inter-processor interrupt (a VM exit under KVM). A load generator faster than the
 * server drains every response and sleeps again before the next, so the slower the server, the more of
 * its requests pay for a wake-up, a cost absent when the clients are on other machines. Under perf
 * (2026-12-04, 2 vCPUs under KVM, 10 connections), waking the generator took 6.0 % of the bare route's samples and
 * 10.1 % of the example app's (1.7 and 4.1 µs per request), and 0.8–1.2 % of every server's with the
 * generator awake. Back to back, asleep then awake: the bare route 25.2 → 22.4 µs of server CPU per
 * request, the middleware alone 34.2 → 26.6, the example app 39.9 → 29.2 (docs/benchmarks.md, "The
 * example app", fifth pass).
 */
export function keepAwake(): () => void {
  let awake = true;
  const spin = (): void => {
    if (awake) setImmediate(spin);
  };
  spin();
  return () => {
    awake = false;
  };
}

/**
 * A `bench/server.ts` child serving `contender`, pinned to `cpu`; `env` is added to its environment,
 * `stdout` (a file descriptor) takes its stdout, which is otherwise read and dropped.
 */
export function startServer(
  contender: Contender,
  fixtures: LoadFixtures,
  execArgv: string[],
  cpu: number | undefined,
  { env = {}, stdout }: { env?: Record<string, string>; stdout?: number } = {},
): Promise<Running> {
  const { hsSecret, rsPublicKey, users } = fixtures;
  const child = fork(SERVER, [contender.id], {
    execArgv: ['--import', 'tsx', ...execArgv],
    env: { ...process.env, NODE_ENV: 'production', [FIXTURES_ENV]: JSON.stringify({ hsSecret, rsPublicKey, users }), ...env },
    // stdout is read and dropped here, as a log collector reads a server's (the example app logs a line per request).
    stdio: ['ignore', stdout ?? 'pipe', 'inherit', 'ipc'],
  });
  child.stdout?.resume();
  if (cpu !== undefined) {
    const pinned = spawnSync('taskset', ['-a', '-cp', String(cpu), String(child.pid)], { encoding: 'utf8' });
    if (pinned.status !== 0) throw new Error(`taskset could not pin ${contender.id} to CPU ${cpu}: ${pinned.stderr || pinned.error?.message}`);
  }
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
    const path = pathOf(run.contender);
    const res = await fetch(`${run.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { user?: string; userUuid?: string; provider?: string };
    if (res.status !== 200) throw new Error(`${run.contender.id}: GET ${path} answered ${res.status} ${JSON.stringify(body)}`);
    if (run.contender.anonymous === true) continue;
    // /whoami answers { user, provider }; a context (/me/context) { userUuid, provider, … }.
    if ((body.user ?? body.userUuid) !== fixtures.users[i] || body.provider !== providerOf(i)) {
      throw new Error(`${run.contender.id}: user ${i} got ${JSON.stringify(body)}, expected ${fixtures.users[i]} / ${providerOf(i)}`);
    }
  }
}

interface Load {
  result: autocannon.Result;
  /** Latency of every response in ms, sorted (autocannon's own histogram has 1 ms resolution). */
  latencies: Float64Array;
}

export function load(run: Running, fixtures: LoadFixtures, connections: number, seconds: number): Promise<Load> {
  const requests = tokensOf(run.contender, fixtures).map((token) => ({
    method: 'GET' as const,
    path: pathOf(run.contender),
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

export async function measured(run: Running, fixtures: LoadFixtures, connections: number, seconds: number, round: number): Promise<RoundSample> {
  const before = await cpuOf(run);
  const loaded = await load(run, fixtures, connections, seconds);
  const after = await cpuOf(run);
  return sample(round, loaded, after.micros - before.micros, after.userMicros - before.userMicros);
}

/** Loads two servers at the same time for `seconds`; each one's sample covers the same window. */
async function measuredTogether(
  a: Running,
  b: Running,
  fixtures: LoadFixtures,
  connections: number,
  seconds: number,
  round: number,
): Promise<[RoundSample, RoundSample]> {
  const [a0, b0] = await Promise.all([cpuOf(a), cpuOf(b)]);
  const [la, lb] = await Promise.all([load(a, fixtures, connections, seconds), load(b, fixtures, connections, seconds)]);
  const [a1, b1] = await Promise.all([cpuOf(a), cpuOf(b)]);
  return [
    sample(round, la, a1.micros - a0.micros, a1.userMicros - a0.userMicros),
    sample(round, lb, b1.micros - b0.micros, b1.userMicros - b0.userMicros),
  ];
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

function pairedResult(rounds: { contender: RoundSample; baseline: RoundSample }[]): PairedResult {
  const ratios = rounds.map((r) => r.contender.requestsPerSec / r.baseline.requestsPerSec);
  return {
    ratio: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
    cpuRatio: median(rounds.map((r) => r.baseline.cpuMicrosPerRequest / r.contender.cpuMicrosPerRequest)),
    cpuMicrosAbove: median(rounds.map((r) => r.contender.cpuMicrosPerRequest - r.baseline.cpuMicrosPerRequest)),
    rounds,
  };
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
  const wake = keepsAwake(options) ? keepAwake() : undefined;
  try {
    // Start servers one at a time: tsx's first load is CPU-heavy.
    for (const contender of contenders) running.push(await startServer(contender, fixtures, options.serverExecArgv, options.serverCpu));
    for (const run of running) await checkServer(run, fixtures);
    log(`servers up: ${running.map((r) => r.contender.id).join(', ')}${wake === undefined ? '' : '; the load generator is kept awake while it loads'}`);
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
    const paired = new Map<string, { contender: RoundSample; baseline: RoundSample }[]>();
    const baseRun = running.find((r) => r.contender.id === baselineId)!;
    const others = running.filter((r) => r !== baseRun);
    for (let round = 0; round < options.pairedRounds; round++) {
      const line: string[] = [];
      for (const run of others.map((_, i) => others[(i + round) % others.length]!)) {
        // Half the connections each, so the load generator's work is the same as in a solo round.
        const half = Math.max(1, Math.floor(options.connections / 2));
        const [c, b] = await measuredTogether(run, baseRun, fixtures, half, options.duration, round);
        if (c.non2xx + c.errors + b.non2xx + b.errors > 0) {
          throw new Error(`${run.contender.id} paired with ${baselineId}: non-2xx responses or errors in paired round ${round + 1}`);
        }
        (paired.get(run.contender.id) ?? paired.set(run.contender.id, []).get(run.contender.id)!).push({ contender: c, baseline: b });
        line.push(`${run.contender.id} ${(c.requestsPerSec / b.requestsPerSec * 100).toFixed(1)} %`);
      }
      log(`paired round ${round + 1}/${options.pairedRounds} (req/s vs ${baselineId} at the same time): ${line.join(' · ')}`);
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
        ...(paired.has(contender.id) ? { paired: pairedResult(paired.get(contender.id)!) } : {}),
      };
    });
  } finally {
    wake?.();
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
