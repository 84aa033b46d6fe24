/**
 * Cost per LLM call of usage accounting and of a limit check, in memory and
 * on Redis (REDIS_URL or 127.0.0.1:6379), in one run:
 *
 *   - the caller's view: one model call (`doGenerate`, what each step of
 *     `generateText` makes) on an in-process model that answers at once, bare
 *     and through the registry's metering middleware, without and with limits
 *     (tokens per period + requests per minute + concurrency). The SDK's own
 *     `generateText` around it costs 200–800 µs on this shared machine, too
 *     noisy to resolve a few µs, so it is left out;
 *   - the backend's work per call, awaited: admission (check + reserve) and
 *     booking (settle + counters), each alone.
 *
 * Rounds alternate the variants (same CPU, same moment); each figure is the
 * median over rounds of the mean µs per call. Short by design (shared CPU).
 *
 *   npx tsx bench/usage.bench.ts
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { LanguageModelObject } from '../src/ai.js';
import { meteredModel } from '../src/usage/middleware.js';
import { createUsageMeter, MemoryUsageBackend, RedisUsageBackend, type UsageBackend, type UsageLimits } from '../src/usage.js';
import { median } from './stats.js';

const ROUNDS = Number(process.env['ROUNDS'] ?? 7);
const CALLS = Number(process.env['CALLS'] ?? 300);
const url = process.env['REDIS_URL'] || 'redis://127.0.0.1:6379';
const prefix = `kuc:bench:usage:${randomUUID()}:`;
const LIMITS: UsageLimits = { tokensPerPeriod: 1e12, requestsPerMinute: 1e9, concurrent: 1000 };

/** A model that answers at once and records nothing. */
const model = (): LanguageModelObject => ({
  specificationVersion: 'v3',
  provider: 'bench',
  modelId: 'm',
  supportedUrls: {},
  doGenerate: async () => ({
    content: [{ type: 'text', text: 'ok' }],
    finishReason: { unified: 'stop', raw: 'stop' },
    usage: { inputTokens: { total: 5, noCache: 5, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 2, text: 2, reasoning: 0 } },
    warnings: [],
  }),
  doStream: async () => {
    throw new Error('not used');
  },
}) as unknown as LanguageModelObject;

const redis = new Redis(url, { maxRetriesPerRequest: 1 });
const backends: Record<string, () => UsageBackend> = {
  memory: () => new MemoryUsageBackend(),
  redis: () => new RedisUsageBackend({ redis, prefix }),
};

type Variant = { name: string; run: () => Promise<void> };
const variants: Variant[] = [];
const PARAMS = { prompt: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] };
type Callable = { doGenerate(params: unknown): PromiseLike<unknown> };
const callModel = (m: LanguageModelObject) => async (): Promise<void> => void (await (m as unknown as Callable).doGenerate(PARAMS));
variants.push({ name: 'model call, bare', run: callModel(model()) });
for (const [kind, make] of Object.entries(backends)) {
  for (const limited of [false, true]) {
    const meter = createUsageMeter({ backend: make(), ...(limited ? { limits: LIMITS } : {}) });
    const metered = meteredModel(model(), { meter, target: { userUuid: randomUUID(), provider: 'Bench', model: 'm' } });
    variants.push({ name: `model call, metered (${kind}${limited ? ', 3 limits' : ', no limit'})`, run: callModel(metered) });
  }
  const backend = make();
  const user = randomUUID();
  let n = 0;
  const counters = new Map([['m\u001fBench\u001fm\u001fcalls', 1], ['m\u001fBench\u001fm\u001fin', 5], ['m\u001fBench\u001fm\u001fout', 2], ['m\u001fBench\u001fm\u001fms', 1]]);
  const call = async (limits: UsageLimits, admit: boolean): Promise<void> => {
    const callId = `c${n++}`;
    if (admit) await backend.begin({ userUuid: user, callId, estimate: 10, limits: { periodMs: 86_400_000, ...limits }, now: Date.now(), leaseMs: 60_000 });
    await backend.book({ userUuid: user, callId, tokens: 7, counters, sets: new Map([['at', Date.now()]]), periodMs: 86_400_000, now: Date.now() });
  };
  variants.push({ name: `${kind}: booking alone (accounting)`, run: () => call({}, false) });
  variants.push({ name: `${kind}: admission + booking, no limit`, run: () => call({}, true) });
  variants.push({ name: `${kind}: admission + booking, 3 limits`, run: () => call(LIMITS, true) });
}

const perCall = new Map<string, number[]>(variants.map((v) => [v.name, []]));
for (const v of variants) for (let i = 0; i < 50; i++) await v.run(); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const v of variants) {
    const start = performance.now();
    for (let i = 0; i < CALLS; i++) await v.run();
    perCall.get(v.name)!.push(((performance.now() - start) * 1000) / CALLS);
  }
}
const base = median(perCall.get('model call, bare')!);
console.log(`usage bench: ${ROUNDS} rounds × ${CALLS} calls, median µs per call (Node ${process.version})`);
for (const v of variants) {
  const us = median(perCall.get(v.name)!);
  const extra = v.name.startsWith('model call, metered') ? `  (+${(us - base).toFixed(1)} µs over bare)` : '';
  console.log(`${v.name.padEnd(48)} ${us.toFixed(1).padStart(8)} µs${extra}`);
}
const keys = await redis.keys(`${prefix}*`);
if (keys.length > 0) await Promise.all(keys.map((k) => redis.del(k)));
redis.disconnect();
