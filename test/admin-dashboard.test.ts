/**
 * The dashboard in a real browser: Debian's Chromium driven by
 * playwright-core. In CI (CI=true) a missing Chromium fails the test; outside
 * CI the suite is skipped with a message saying how to install it.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createStore } from '../examples/app.js';
import { fakeLlmResources } from './support/fake-llm.js';
import { generateSecret, mintToken } from '../examples/tokens.js';
import type { ContextStore } from '../src/index.js';

/** How long the page may take to react (a wait, not a timing assertion): generous, the CI machine is shared. */
const WAIT = { timeout: 15_000 } as const;

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
const ARTIFACTS = new URL('../test-artifacts/', import.meta.url);

if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(
    `[admin-dashboard.test] skipped: no Chromium at ${CHROMIUM}. Install it with ` +
      '`apt-get install -y chromium` (or set CHROMIUM_PATH); in CI this test fails instead.',
  );
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)('admin dashboard in Chromium', () => {
  let browser: Browser;
  let server: Server;
  let store: ContextStore;
  let base: string;
  const secret = generateSecret();
  const adminId = randomUUID();
  const adminToken = mintToken(secret, adminId, { role: 'admin' });
  const alice = { id: randomUUID(), provider: 'Google', model: 'gemini-2.5-flash', mcpServerName: 'Teradata MCP' };
  const bob = { id: randomUUID(), provider: 'Anthropic', model: 'claude-3-5-haiku' };
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`Chromium is required in CI but missing at ${CHROMIUM}; .ci/run installs it with apt-get.`);
    mkdirSync(ARTIFACTS, { recursive: true });
    const created = createApp({ secret, admin: { refreshInterval: 1000 }, store: createStore({ ttl: 30 * 60_000, resources: fakeLlmResources() }) });
    store = created.store;
    server = created.app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await store?.close();
  });

  /** Configures a user through the API, then runs one query (which builds the user's LLM client). */
  async function configure(user: { id: string; [k: string]: string }): Promise<void> {
    const { id, ...fields } = user;
    const headers = { authorization: `Bearer ${mintToken(secret, id)}`, 'content-type': 'application/json' };
    const res = await fetch(`${base}/configure`, { method: 'POST', headers, body: JSON.stringify(fields) });
    expect(res.status).toBe(200);
    const query = await fetch(`${base}/query`, { method: 'POST', headers, body: JSON.stringify({ prompt: 'hello' }) });
    expect(((await query.json()) as { model: string }).model).toBe(user['model']);
  }

  async function open(viewport: { width: number; height: number }, hash = ''): Promise<Page> {
    const context = await browser.newContext({ viewport, colorScheme: 'light' });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`external request: ${r.url()}`);
    });
    await page.goto(`${base}/admin${hash}`);
    return page;
  }

  const row = (page: Page, user: string) => page.locator(`tr[data-user="${user}"]`);

  it('shows two users configured through the API with their own provider/model, and evicts one through the button', async () => {
    await Promise.all([configure(alice), configure(bob)]);
    const page = await open({ width: 1280, height: 720 });

    // Signed out: the token form, nothing else.
    await expect.poll(() => page.locator('#signin').isVisible(), WAIT).toBe(true);
    expect(await page.locator('#app').isVisible()).toBe(false);
    await page.fill('#token', adminToken);
    await page.click('#signin button[type=submit]');

    await row(page, alice.id).waitFor();
    await row(page, bob.id).waitFor();
    expect(await row(page, alice.id).locator('td.provider').textContent()).toBe('Google');
    expect(await row(page, alice.id).locator('td.model').textContent()).toBe('gemini-2.5-flash');
    expect(await row(page, alice.id).locator('td.mcp').textContent()).toBe('Teradata MCP');
    expect(await row(page, bob.id).locator('td.provider').textContent()).toBe('Anthropic');
    expect(await row(page, bob.id).locator('td.model').textContent()).toBe('claude-3-5-haiku');
    expect(await row(page, bob.id).locator('td.mcp').textContent()).toBe('—');
    expect(await row(page, alice.id).locator('td.live').textContent()).toBe('LLM');
    expect(await row(page, adminId).locator('td.live').textContent()).toBe('none');
    expect(await row(page, adminId).locator('.you').textContent()).toBe('(you)');
    // The countdown shows the time left before inactivity eviction, and ticks.
    const countdown = row(page, bob.id).locator('td.countdown');
    expect(await countdown.textContent()).toMatch(/^(29|30)m \d+s$/);
    const first = await countdown.textContent();
    await expect.poll(() => countdown.textContent(), WAIT).not.toBe(first);
    // The table refreshes itself: a user configured now appears without a reload.
    const carol = { id: randomUUID(), provider: 'OpenAI', model: 'gpt-4o-mini' };
    await configure(carol);
    await row(page, carol.id).waitFor(WAIT);
    expect(await row(page, carol.id).locator('td.model').textContent()).toBe('gpt-4o-mini');
    await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname, fullPage: true });

    // Evict Alice: a confirmation first; cancelling keeps her.
    await row(page, alice.id).locator('button.evict').click();
    await expect.poll(() => page.locator('#confirm').isVisible(), WAIT).toBe(true);
    expect(await page.locator('#confirm-user').textContent()).toBe(alice.id);
    await page.click('#confirm-cancel');
    expect(store.has(alice.id)).toBe(true);
    await row(page, alice.id).locator('button.evict').click();
    await page.click('#confirm-evict');
    await row(page, alice.id).waitFor({ state: 'detached' });
    expect(store.has(alice.id)).toBe(false);
    expect(store.has(bob.id)).toBe(true);
    expect(await page.locator('#notice').textContent()).toBe(`Evicted ${alice.id}.`);
    expect(await row(page, bob.id).locator('td.provider').textContent()).toBe('Anthropic');

    // Filtering to nothing shows the empty state.
    await page.fill('#q', 'no-such-provider');
    await expect.poll(() => page.locator('#empty').isVisible(), WAIT).toBe(true);
    expect(await page.locator('#empty').textContent()).toContain('No active context matches');
    await page.fill('#q', 'anthropic');
    await row(page, bob.id).waitFor();
    expect(await page.locator('#rows tr').count()).toBe(1);
    expect(problems).toEqual([]);
  });

  it('refuses a non-admin, and sends a bad token back to the sign-in form', async () => {
    const page = await open({ width: 1280, height: 720 }, `#token=${mintToken(secret, bob.id)}`);
    const error = page.locator('#error');
    await error.waitFor();
    expect(await error.getAttribute('data-code')).toBe('forbidden');
    expect(await error.textContent()).toMatch(/^Forbidden: .*role "admin"/);
    expect(await page.locator('#table').isVisible()).toBe(false);
    expect(page.url()).toBe(`${base}/admin`); // the token left the address bar

    const bad = await open({ width: 1280, height: 720 }, '#token=not.a.token');
    await bad.locator('#signin-error').waitFor();
    expect(await bad.locator('#signin-error').textContent()).toMatch(/Token refused \(invalid_token\)/);
    expect(await bad.locator('#app').isVisible()).toBe(false);
    expect(problems).toEqual([]);
  });

  it('is readable at phone width (375 px) without horizontal scrolling', async () => {
    const page = await open({ width: 375, height: 812 }, `#token=${adminToken}`);
    await row(page, bob.id).waitFor();
    // (Strings: this runs in the page; the test is not compiled with the DOM lib.)
    const widths = await page.evaluate<{ doc: number; view: number }>('({ doc: document.documentElement.scrollWidth, view: window.innerWidth })');
    expect(widths.view).toBe(375);
    expect(widths.doc).toBeLessThanOrEqual(375);
    const box = await row(page, bob.id).locator('button.evict').boundingBox();
    expect(box!.x + box!.width).toBeLessThanOrEqual(375);
    // Cards: each cell is labelled on its own line.
    const label = await page.evaluate<string>(`getComputedStyle(document.querySelector('tr[data-user="${bob.id}"] td.model'), '::before').content`);
    expect(label).toBe('"Model"');
    await page.screenshot({ path: new URL('dashboard-phone.png', ARTIFACTS).pathname, fullPage: true });
    expect(problems).toEqual([]);
  });

  it('shows an error state when the server cannot be reached, and recovers', async () => {
    const page = await open({ width: 1280, height: 720 }, `#token=${adminToken}`);
    await row(page, bob.id).waitFor();
    await page.route(`${base}/admin/contexts**`, (route) => route.abort('connectionrefused'));
    const error = page.locator('#error');
    await expect.poll(() => error.getAttribute('data-code'), WAIT).toBe('network');
    expect(await error.textContent()).toMatch(/^Cannot reach the server/);
    await page.unroute(`${base}/admin/contexts**`);
    await expect.poll(() => error.isVisible(), WAIT).toBe(false);
    await row(page, bob.id).waitFor();
  });
});
