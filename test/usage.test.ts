/**
 * Per-user usage and limits, in memory, on the real AI SDK clients against
 * the wire server (which records per call the key's fingerprint and the
 * usage it reported): what is booked to a user is exactly what the provider
 * reported for that user's key, and limits hold under concurrency.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { keyFingerprint, startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { getUserLlm } from '../src/ai.js';
import { configureUser, runAsUser, UsageLimitExceededError, type ContextPatch } from '../src/index.js';
import { createUsageMeter, getUserUsage, MemoryUsageBackend, type UsageMeter, type UsageMeterOptions } from '../src/usage.js';
import { useStores } from './support/stores.js';

let wire: WireServer;
beforeAll(async () => {
  wire = await startWireServer({ tokenDelayMs: 1, words: 12 });
});
afterAll(async () => {
  await wire.close();
});
beforeEach(() => wire.reset());

const newStore = useStores();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const PROVIDERS: Array<(apiKey: string) => ContextPatch> = [
  (apiKey) => ({ provider: 'OpenAI', model: 'gpt-4o-mini', llmCredentials: { apiKey } }),
  (apiKey) => ({ provider: 'Anthropic', model: 'claude-3-5-haiku', llmCredentials: { apiKey } }),
  (apiKey) => ({ provider: 'Google', model: 'gemini-2.5-flash', llmCredentials: { apiKey } }),
  (apiKey) => ({ provider: 'Amazon', model: 'amazon.nova-lite-v1:0', awsRegion: 'eu-west-1', llmCredentials: { apiKey } }),
];

function setup(options: UsageMeterOptions = {}, registry: { anyModel?: boolean; url?: string } = {}): { meter: UsageMeter; store: ReturnType<typeof newStore> } {
  const meter = createUsageMeter({ backend: new MemoryUsageBackend(), ...options });
  const { url = wire.url, ...rest } = registry;
  const store = newStore({ resources: { llmInstance: exampleLlmRegistry(url, { ...rest, usage: meter }).resource() } });
  return { meter, store };
}

/** The usage the wire server reported for calls made with `key`. */
function wireUsageOf(key: string): { calls: number; input: number; output: number } {
  const calls = wire.calls.filter((c) => c.keyHash === keyFingerprint(key));
  return {
    calls: calls.length,
    input: calls.reduce((s, c) => s + (c.usage?.inputTokens ?? 0), 0),
    output: calls.reduce((s, c) => s + (c.usage?.outputTokens ?? 0), 0),
  };
}

describe('usage per user', () => {
  it('50 users × concurrent calls on four providers: each user is booked exactly the usage the wire reported for their key, none for another', async () => {
    const { meter, store } = setup();
    const users = Array.from({ length: 50 }, (_, i) => ({ uuid: randomUUID(), key: `k${i}-${randomUUID()}`, patch: PROVIDERS[i % PROVIDERS.length]! }));
    await Promise.all(users.map((u, i) => runAsUser(u.uuid, async () => {
      await configureUser(u.patch(u.key));
      const llm = (await getUserLlm())!;
      // 1 to 4 calls each, streamed or not, with prompts of different lengths, interleaved by random delays.
      await Promise.all(Array.from({ length: 1 + (i % 4) }, async (_, j) => {
        await sleep(Math.random() * 20);
        const prompt = `user ${u.uuid} call ${j} ${'word '.repeat((i * 7 + j) % 9)}`;
        if ((i + j) % 2 === 0) await llm.generateText({ prompt });
        else for await (const _part of llm.streamText({ prompt }).textStream) { /* drain */ }
      }));
    }, { store })));
    expect(wire.calls.every((c) => c.finished && c.usage !== null)).toBe(true);

    let booked = 0;
    for (const u of users) {
      const usage = await meter.read(u.uuid);
      const reported = wireUsageOf(u.key);
      expect(reported.calls).toBeGreaterThan(0);
      expect({ calls: usage.calls, input: usage.inputTokens, output: usage.outputTokens }).toEqual(reported);
      // Booked only to this user's own provider and model.
      expect(usage.models.map((m) => `${m.provider}/${m.model}`)).toEqual([`${u.patch('x').provider}/${u.patch('x').model}`]);
      expect(usage.period.tokensUsed).toBe(reported.input + reported.output);
      expect(usage.period.tokensReserved).toBe(0);
      expect(usage.inFlight).toBe(0);
      booked += usage.inputTokens + usage.outputTokens;
    }
    // Nothing booked to anyone else: the sum over users is the wire's total.
    expect(booked).toBe(wire.calls.reduce((s, c) => s + c.usage!.inputTokens + c.usage!.outputTokens, 0));
    expect((await meter.list()).map((u) => u.userUuid).sort()).toEqual(users.map((u) => u.uuid).sort());
  });

  it('getUserUsage() answers for the current user; the record holds no prompt, answer or key', async () => {
    const { meter, store } = setup();
    const key = `secret-${randomUUID()}`;
    const user = randomUUID();
    const usage = await runAsUser(user, async () => {
      await configureUser(PROVIDERS[0]!(key));
      const { text } = await (await getUserLlm())!.generateText({ prompt: 'the confidential prompt' });
      expect(text).toContain('confidential');
      return getUserUsage(meter);
    }, { store });
    expect(usage.userUuid).toBe(user);
    expect(usage.calls).toBe(1);
    const json = JSON.stringify(usage);
    for (const secret of [key, keyFingerprint(key), 'confidential', 'answered']) expect(json).not.toContain(secret);
  });

  it('a provider error is booked by code, without tokens', async () => {
    const { meter, store } = setup({}, { anyModel: true });
    const user = randomUUID();
    await runAsUser(user, async () => {
      await configureUser({ provider: 'OpenAI', model: 'wire-error-503', llmCredentials: { apiKey: 'k-err' } });
      await expect((await getUserLlm())!.generateText({ prompt: 'x', maxRetries: 0 })).rejects.toMatchObject({ statusCode: 503 });
    }, { store });
    const usage = await meter.read(user);
    expect(usage).toMatchObject({ calls: 1, errors: 1, inputTokens: 0, outputTokens: 0, errorsByCode: { http_503: 1 } });
    expect(usage.period).toMatchObject({ tokensUsed: 0, tokensReserved: 0 });
  });
});

describe('limits per user', () => {
  it('a user at the token limit with 20 concurrent calls overshoots by at most one call\'s estimate; other users are unaffected', async () => {
    // A call of the heavy user reports 13 tokens; the estimate is above it, as a real one (with maxOutputTokens) is.
    const ESTIMATE = 15;
    const LIMIT = 100;
    const { meter, store } = setup({ limits: { tokensPerPeriod: LIMIT }, estimateTokens: () => ESTIMATE });
    const heavy = { uuid: randomUUID(), key: `heavy-${randomUUID()}` };
    const others = Array.from({ length: 5 }, (_, i) => ({ uuid: randomUUID(), key: `other${i}-${randomUUID()}` }));
    const outcomes = await Promise.all([
      ...Array.from({ length: 20 }, () => runAsUser(heavy.uuid, async () => {
        await configureUser(PROVIDERS[1]!(heavy.key));
        await sleep(Math.random() * 5);
        return (await getUserLlm())!.generateText({ prompt: 'spend tokens now', maxRetries: 0 }).then(() => 'ok', (e: unknown) => e);
      }, { store })),
      ...others.map((o) => runAsUser(o.uuid, async () => {
        await configureUser(PROVIDERS[2]!(o.key));
        return (await getUserLlm())!.generateText({ prompt: 'a normal call', maxRetries: 0 }).then(() => 'ok', (e: unknown) => e);
      }, { store })),
    ]);
    const heavyOutcomes = outcomes.slice(0, 20);
    const refused = heavyOutcomes.filter((o) => o !== 'ok');
    expect(refused.length).toBeGreaterThan(0);
    for (const e of refused) {
      expect(e).toBeInstanceOf(UsageLimitExceededError);
      expect(e).toMatchObject({ status: 429, error: 'usage_limit_exceeded', limit: 'tokens' });
      expect(Number((e as UsageLimitExceededError).headers!['Retry-After'])).toBeGreaterThan(0);
    }
    const reported = wireUsageOf(heavy.key);
    const used = reported.input + reported.output;
    // Calls are let through while used + reserved < LIMIT: with all 20 at once, ceil(LIMIT / ESTIMATE) of them.
    expect(reported.calls).toBe(Math.ceil(LIMIT / ESTIMATE));
    expect(reported.calls).toBe(20 - refused.length);
    expect(used - LIMIT).toBeLessThanOrEqual(ESTIMATE);
    // The budget is spent up to the estimates' slack, not left unused.
    expect(used).toBeGreaterThan(LIMIT - ESTIMATE);
    const usage = await meter.read(heavy.uuid);
    expect(usage.period.tokensUsed).toBe(used);
    expect(usage.limited.tokens).toBe(refused.length);
    expect(usage.lastLimitedAt).not.toBeNull();
    expect(outcomes.slice(20)).toEqual(others.map(() => 'ok'));
    for (const o of others) expect((await meter.read(o.uuid)).limited).toEqual({});
  });

  it('concurrent calls above the limit are refused, and the in-flight count never passes it', async () => {
    const slow = await startWireServer({ tokenDelayMs: 5, words: 12 });
    const { meter, store } = setup({ limits: { concurrent: 2 } }, { url: slow.url });
    const user = randomUUID();
    const key = `conc-${randomUUID()}`;
    const results = await runAsUser(user, async () => {
      await configureUser(PROVIDERS[0]!(key));
      const llm = (await getUserLlm())!;
      return Promise.all(Array.from({ length: 8 }, async () => {
        // A refused stream ends with the refusal as its last event.
        const parts = [];
        for await (const part of llm.streamText({ prompt: 'one two three four five six seven eight', onError: () => {} }).fullStream) parts.push(part);
        const last = parts.at(-1)!;
        return last.type === 'error' ? last.error : last.type;
      }));
    }, { store });
    const calls = slow.calls.filter((c) => c.keyHash === keyFingerprint(key));
    await slow.close();
    // All 8 start together and each answer takes ~80 ms (16 words, 5 ms apart): only 2 reach the wire.
    expect(calls).toHaveLength(2);
    const usage = await meter.read(user);
    expect(usage.limited.concurrent).toBe(8 - calls.length);
    expect(usage.calls).toBe(calls.length);
    expect(results.filter((r) => r === 'finish')).toHaveLength(calls.length);
    expect(results.filter((r) => r instanceof UsageLimitExceededError && r.limit === 'concurrent')).toHaveLength(8 - calls.length);

  });

  it('an aborted stream frees its slot and its reservation at once, booked as aborted', async () => {
    const slow = await startWireServer({ tokenDelayMs: 20, words: 12 });
    const { meter, store } = setup({ limits: { concurrent: 1, tokensPerPeriod: 10_000 } }, { url: slow.url });
    const user = randomUUID();
    try {
      await runAsUser(user, async () => {
        await configureUser(PROVIDERS[1]!(`abort-${randomUUID()}`));
        const llm = (await getUserLlm())!;
        const controller = new AbortController();
        const result = llm.streamText({ prompt: 'a long answer please', abortSignal: controller.signal, onError: () => {} });
        for await (const _ of result.textStream) {
          controller.abort();
          break;
        }
        // The slot is free: the next call is admitted (concurrent: 1) and completes.
        const next = await llm.generateText({ prompt: 'next', maxRetries: 0 });
        expect(next.text).toContain('answered');
      }, { store });
      const usage = await meter.read(user);
      expect(usage).toMatchObject({ calls: 2, errors: 1, errorsByCode: { aborted: 1 }, inFlight: 0, limited: {} });
      expect(usage.period.tokensReserved).toBe(0);
    } finally {
      await slow.close();
    }
  });

  it('requests per minute: the call past the limit is refused with Retry-After; per-user overrides set by the operator apply', async () => {
    const { meter, store } = setup({ limits: { requestsPerMinute: 3 } });
    const vip = randomUUID();
    const normal = randomUUID();
    meter.setLimits(vip, { requestsPerMinute: 6 });
    const run = (user: string, n: number) => runAsUser(user, async () => {
      await configureUser(PROVIDERS[2]!(`rpm-${user}`));
      const llm = (await getUserLlm())!;
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push(await llm.generateText({ prompt: `call ${i}`, maxRetries: 0 }).then(() => 'ok', (e: unknown) => e));
      return out;
    }, { store });
    const [a, b] = await Promise.all([run(normal, 5), run(vip, 7)]);
    expect(a.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
    expect(a.slice(3).every((e) => e instanceof UsageLimitExceededError && e.limit === 'requests' && e.retryAfterMs > 0)).toBe(true);
    expect(b.filter((r) => r === 'ok')).toHaveLength(6);
    expect(meter.limitsOf(vip).requestsPerMinute).toBe(6);
    expect(() => meter.setLimits(vip, { requestsPerHour: 1 } as never)).toThrow(/unknown limit "requestsPerHour"/);
  });
});

describe('options are read once and checked', () => {
  it('refuses unknown options and bad values with a TypeError naming them', async () => {
    expect(() => createUsageMeter({ limit: {} } as never)).toThrow(/unknown option "limit"/);
    expect(() => createUsageMeter({ limits: { tokensPerDay: 5 } } as never)).toThrow(/unknown limit "tokensPerDay"/);
    expect(() => createUsageMeter({ limits: { concurrent: -1 } })).toThrow(/options\.limits\.concurrent must be a non-negative integer/);
    expect(() => createUsageMeter({ limits: { periodMs: 10 } })).toThrow(/periodMs must be a non-negative integer of at least 1000 ms/);
    expect(() => createUsageMeter({ onStoreError: 'ignore' as never })).toThrow(/onStoreError must be 'refuse' or 'allow'/);
    expect(() => createUsageMeter({ backend: {} as never })).toThrow(/options\.backend must be a usage backend/);
    expect(() => new MemoryUsageBackend({ size: 1 } as never)).toThrow(/unknown option "size"/);
    const { RedisUsageBackend } = await import('../src/usage.js');
    expect(() => new RedisUsageBackend({ redis: {} as never })).toThrow(/options\.redis must be an ioredis client/);
    expect(() => exampleLlmRegistry(wire.url, { usage: {} as never })).toThrow(/options\.usage must be a usage meter/);
    const { adminRouter } = await import('../src/index.js');
    expect(() => adminRouter({ usage: {} as never })).toThrow(/options\.usage must be a usage meter/);
    const { registerUsageMetrics } = await import('../src/metrics.js');
    expect(() => registerUsageMetrics(createUsageMeter(), { registery: 1 } as never)).toThrow(/unknown option "registery"/);
    // Limits a function of the operator returns are checked too.
    const meter = createUsageMeter({ limitsFor: () => ({ requestsPerHour: 1 }) as never });
    expect(() => meter.limitsOf('u')).toThrow(/limitsFor\(\): unknown limit "requestsPerHour"/);
  });
});
