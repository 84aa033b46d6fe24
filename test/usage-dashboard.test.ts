/**
 * The dashboard's usage table in a real browser (Debian's Chromium driven
 * by playwright-core): usage per user from real calls through the example
 * app on the wire server, sorted by the header clicked, and the user a
 * limit refused shown with a red tag. In CI a missing Chromium fails.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createStore } from '../examples/app.js';
import { exampleLlmRegistry } from '../examples/providers/registry.js';
import { startWireServer, type WireServer } from '../examples/providers/wire-server.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import type { ContextStore } from '../src/index.js';
import { createUsageMeter, MemoryUsageBackend } from '../src/usage.js';

const WAIT = { timeout: 15_000 } as const;
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const ARTIFACTS = new URL('../test-artifacts/', import.meta.url);
if (!HAVE_CHROMIUM && !IN_CI) console.warn(`[usage-dashboard.test] skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH).`);

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)('usage in the admin dashboard, in Chromium', () => {
  let browser: Browser;
  let server: Server;
  let store: ContextStore;
  let wire: WireServer;
  let base: string;
  const problems: string[] = [];
  const secret = generateSecret();
  const adminToken = mintToken(secret, randomUUID(), { role: 'admin' });
  const meter = createUsageMeter({ backend: new MemoryUsageBackend(), limits: { requestsPerMinute: 2 } });
  const light = { id: randomUUID(), provider: 'Google', model: 'gemini-2.5-flash', queries: 1 };
  const heavy = { id: randomUUID(), provider: 'Anthropic', model: 'claude-3-5-haiku', queries: 3 };

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`Chromium is required in CI but missing at ${CHROMIUM}.`);
    mkdirSync(ARTIFACTS, { recursive: true });
    wire = await startWireServer({ tokenDelayMs: 1 });
    const llms = exampleLlmRegistry(wire.url, { usage: meter });
    const created = createApp({ secret, llms, store: createStore({}, undefined, llms), admin: { usage: meter, refreshInterval: 1000 } });
    store = created.store;
    server = created.app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });

  afterAll(async () => {
    await browser?.close();
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await store?.close();
    await wire?.close();
  });

  /** Configures the user and runs `queries` queries through the app; returns their HTTP statuses. */
  async function use(user: typeof light): Promise<number[]> {
    const headers = { authorization: `Bearer ${mintToken(secret, user.id)}`, 'content-type': 'application/json' };
    const res = await fetch(`${base}/configure`, { method: 'POST', headers, body: JSON.stringify({ provider: user.provider, model: user.model, llmCredentials: { apiKey: `k-${user.id}` } }) });
    expect(res.status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < user.queries; i++) {
      statuses.push((await fetch(`${base}/query`, { method: 'POST', headers, body: JSON.stringify({ prompt: `hello ${i}`, stream: false }) })).status);
    }
    return statuses;
  }

  const usageRow = (page: Page, user: string) => page.locator(`#usage-rows tr[data-user="${user}"]`);
  const order = (page: Page) => page.locator('#usage-rows tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-user')));

  it('shows each user\'s calls and tokens, sorts by the header clicked, and marks the limited user', async () => {
    expect(await use(light)).toEqual([200]);
    expect(await use(heavy)).toEqual([200, 200, 429]);
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${base}/admin`);
    await page.fill('#token', adminToken);
    await page.click('#signin button[type=submit]');
    await usageRow(page, heavy.id).waitFor(WAIT);
    await usageRow(page, light.id).waitFor(WAIT);

    const [h, l] = [await meter.read(heavy.id), await meter.read(light.id)];
    expect(await usageRow(page, heavy.id).locator('td.calls').textContent()).toBe('2');
    expect(await usageRow(page, heavy.id).locator('td.tokens').textContent()).toBe(`${h.inputTokens + h.outputTokens} (${h.inputTokens} / ${h.outputTokens})`);
    expect(await usageRow(page, light.id).locator('td.calls').textContent()).toBe('1');
    expect(await usageRow(page, light.id).locator('td.tokens').textContent()).toBe(`${l.inputTokens + l.outputTokens} (${l.inputTokens} / ${l.outputTokens})`);
    // The limited user: a red tag naming the limit and how often it refused them; the other user none.
    expect(await usageRow(page, heavy.id).locator('td.limited .tag.hit').textContent()).toBe('requests ×1');
    expect(await usageRow(page, heavy.id).getAttribute('class')).toContain('limited');
    expect(await usageRow(page, light.id).locator('td.limited').textContent()).toBe('no');
    expect(await page.locator('#usage-rows tr.limited td.user code').evaluate((e) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(e).color)).toBe('rgb(180, 35, 24)');

    // Sorted by tokens, most first; clicking "Calls" twice sorts by calls ascending.
    expect(await order(page)).toEqual([heavy.id, light.id]);
    await page.click('#usage-table button[data-sort="calls"]');
    await expect.poll(() => page.locator('#usage-table button[data-sort="calls"]').getAttribute('aria-sort'), WAIT).toBe('descending');
    await page.click('#usage-table button[data-sort="calls"]');
    await expect.poll(() => page.locator('#usage-table button[data-sort="calls"]').getAttribute('aria-sort'), WAIT).toBe('ascending');
    expect(await order(page)).toEqual([light.id, heavy.id]);

    // The table follows new usage without a reload.
    const third = { id: randomUUID(), provider: 'OpenAI', model: 'gpt-4o-mini', queries: 2 };
    expect(await use(third)).toEqual([200, 200]);
    await usageRow(page, third.id).waitFor(WAIT);
    await page.screenshot({ path: new URL('dashboard-usage.png', ARTIFACTS).pathname, fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
