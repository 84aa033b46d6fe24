/**
 * The two-user demo: user A configures Google/gemini-2.5-flash while user B
 * configures Anthropic/claude-3-5-haiku at the same time, then both fire
 * interleaved queries. Prints who ran on what; exits 1 on any cross-talk.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createApp } from './app.js';
import { generateSecret, mintToken } from './tokens.js';

export interface DemoRow {
  user: string;
  query: number;
  expected: string;
  ran: string;
  ok: boolean;
}

const USERS = [
  { name: 'A', provider: 'Google', model: 'gemini-2.5-flash' },
  { name: 'B', provider: 'Anthropic', model: 'claude-3-5-haiku' },
] as const;

export async function runDemo(queriesPerUser = 8): Promise<DemoRow[]> {
  const secret = generateSecret();
  const { app, store } = createApp({ secret });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const users = USERS.map((u) => ({ ...u, uuid: randomUUID(), token: '' }));
  for (const u of users) u.token = mintToken(secret, u.uuid);

  const call = async (token: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(base + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (res.status !== 200) throw new Error(`${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };

  try {
    // Both users configure at the same moment.
    await Promise.all(users.map((u) => call(u.token, '/configure', { provider: u.provider, model: u.model })));
    // Interleaved queries: all in flight together, in shuffled order.
    const jobs = users.flatMap((u) => Array.from({ length: queriesPerUser }, (_, i) => ({ u, i })));
    jobs.sort(() => Math.random() - 0.5);
    return await Promise.all(
      jobs.map(async ({ u, i }) => {
        const res = await call(u.token, '/query', { prompt: `query ${i} from user ${u.name}` });
        const ran = `${String(res['provider'])}/${String(res['model'])}`;
        const expected = `${u.provider}/${u.model}`;
        const answeredBy = String(res['answer']).startsWith(`[${expected}]`);
        return { user: u.name, query: i, expected, ran, ok: ran === expected && answeredBy && res['user'] === u.uuid };
      }),
    );
  } finally {
    server.close();
    await store.close();
  }
}

function printTable(rows: DemoRow[]): void {
  const sorted = [...rows].sort((a, b) => a.user.localeCompare(b.user) || a.query - b.query);
  console.log('user  query  configured                    ran on                        ok');
  for (const r of sorted) {
    console.log(`${r.user.padEnd(6)}${String(r.query).padEnd(7)}${r.expected.padEnd(30)}${r.ran.padEnd(30)}${r.ok ? 'yes' : 'CROSS-TALK'}`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runDemo().then(
    (rows) => {
      printTable(rows);
      const bad = rows.filter((r) => !r.ok).length;
      console.log(bad === 0 ? `\n${rows.length} queries, 0 cross-user answers.` : `\n${bad} of ${rows.length} queries ran on another user's configuration!`);
      process.exitCode = bad === 0 ? 0 : 1;
    },
    (err: unknown) => {
      console.error('demo failed:', err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
