/**
 * The demo's usage part (npm start): each user's usage at the end, and one
 * user limited. (The example app answers a refused call in its JSON error
 * handler, examples/http-errors.ts: 429 with `Retry-After` and
 * `usage_limit_exceeded`, or 503 `usage_store_unavailable`.)
 */
import type { UsageMeter, UserUsage } from '../src/usage.js';
import type { WireCall } from './providers/wire-server.js';

/** What the demo (npm start) shows of usage: each user's spend, and the one user it limits. */
export interface DemoUsage {
  users: Array<{ user: string; usage: UserUsage; tokensOnWire: number }>;
  refused: { user: string; status: number; error: string | undefined; retryAfter: string | null } | null;
}

export const demoUsage: DemoUsage = { users: [], refused: null };

/**
 * The operator caps `user`'s tokens at what they have spent; their next
 * agent query is refused (429), and the demo records it.
 */
export async function limitOneUser(meter: UsageMeter, base: string, user: { name: string; uuid: string; token: string }): Promise<void> {
  const spent = (await meter.read(user.uuid)).period.tokensUsed;
  meter.setLimits(user.uuid, { tokensPerPeriod: spent });
  const res = await fetch(`${base}/agent`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `one more query from user ${user.name}`, stream: false }),
  });
  const body = (await res.json()) as { error?: string };
  demoUsage.refused = { user: user.name, status: res.status, error: body.error, retryAfter: res.headers.get('retry-after') };
}

/** Each user's usage, next to the tokens the wire server reported for their queries (prompts `… from user <name>:`). */
export async function collectUsage(meter: UsageMeter, users: ReadonlyArray<{ name: string; uuid: string }>, wire: { calls: readonly WireCall[] }): Promise<void> {
  await meter.flush();
  demoUsage.users = await Promise.all(users.map(async (u) => ({
    user: u.name,
    usage: await meter.read(u.uuid),
    tokensOnWire: wire.calls.filter((c) => c.prompt.includes(`from user ${u.name}:`)).reduce((s, c) => s + (c.usage?.inputTokens ?? 0) + (c.usage?.outputTokens ?? 0), 0),
  })));
}

/** Whether every user was booked exactly what the wire reported, and the limited user got 429 usage_limit_exceeded. */
export function usageOk(): boolean {
  return demoUsage.users.length > 0 && demoUsage.users.every((u) => u.usage.inputTokens + u.usage.outputTokens === u.tokensOnWire)
    && demoUsage.refused?.status === 429 && demoUsage.refused.error === 'usage_limit_exceeded';
}

export function printUsage(): void {
  console.log('\nUsage per user (koa-user-context/usage; also at GET /admin/usage):');
  for (const { user, usage, tokensOnWire } of demoUsage.users) {
    const tools = usage.tools.map((t) => `${t.server} ${t.calls}`).join(', ') || 'none';
    const limited = Object.entries(usage.limited).map(([k, n]) => `${k} ×${n}`).join(', ') || 'no';
    console.log(`  ${user}: ${usage.calls} LLM calls, ${usage.inputTokens} in + ${usage.outputTokens} out tokens (wire reported ${tokensOnWire}), tool calls: ${tools}; limited: ${limited}`);
  }
  const r = demoUsage.refused;
  if (r !== null) console.log(`  The operator capped ${r.user}'s tokens: their next query got ${r.status} ${r.error ?? ''} (Retry-After: ${r.retryAfter ?? '—'} s).`);
}
