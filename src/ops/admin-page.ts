/**
 * The admin dashboard page: one self-contained HTML document (inline style
 * and script, no external fetch of any kind) served by the admin router, with
 * a Content-Security-Policy that allows exactly that style and that script
 * (by hash) and requests to its own origin.
 *
 * The script keeps the admin token in a variable (never in storage or a
 * cookie); it is read from the sign-in form or, once, from a `#token=…` URL
 * fragment which is then removed from the address bar.
 *
 * @internal
 * @module
 */
import { createHash } from 'node:crypto';
import { USAGE_HTML, USAGE_SCRIPT, USAGE_STYLE } from './admin-usage-page.js';

const STYLE = `
:root{color-scheme:light dark;--fg:#1d2430;--muted:#5b6576;--bg:#f6f7f9;--card:#fff;--line:#dde1e7;--accent:#2456c7;--danger:#b42318;--ok:#067647}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#a2abbb;--bg:#12151b;--card:#1b2029;--line:#2e3542;--accent:#7aa2ff;--danger:#ff8a7a;--ok:#5fd3a0}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem 1rem;padding:1rem 1.25rem;border-bottom:1px solid var(--line);background:var(--card)}
h1{font-size:1.15rem;margin:0}
main,#signin{padding:1rem 1.25rem;max-width:1200px}
.muted,.hint{color:var(--muted)}
.hint{font-size:.85rem;margin:.4rem 0 0}
label{display:block;font-weight:600;margin-bottom:.35rem}
input{font:inherit;padding:.45rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--card);color:var(--fg);min-width:0}
button{font:inherit;padding:.4rem .8rem;border-radius:6px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button:disabled{opacity:.45;cursor:default}
button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
button.danger{color:var(--danger);border-color:currentColor}
.row{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
.row input{flex:1 1 14rem}
.toolbar{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin-bottom:.75rem}
.toolbar input{flex:1 1 16rem}
.alert{padding:.6rem .8rem;border-radius:6px;border:1px solid var(--danger);color:var(--danger);margin:.75rem 0;overflow-wrap:anywhere}
.notice{padding:.5rem .8rem;border-radius:6px;border:1px solid var(--ok);color:var(--ok);margin:.75rem 0}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:8px}
th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.78rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted)}
td.user code{font-size:.8rem;overflow-wrap:anywhere}
.tag{display:inline-block;font-size:.75rem;padding:0 .4rem;border-radius:999px;border:1px solid var(--line);margin:0 .25rem .15rem 0}
.tag.live{border-color:var(--ok);color:var(--ok)}
.you{font-size:.75rem;color:var(--accent);margin-left:.3rem}
.soon{color:var(--danger);font-weight:600}
.empty{padding:2rem 1rem;text-align:center;color:var(--muted);background:var(--card);border:1px dashed var(--line);border-radius:8px}
.pager{display:flex;gap:.75rem;align-items:center;justify-content:flex-end;margin-top:.75rem}
dialog{border:1px solid var(--line);border-radius:10px;background:var(--card);color:var(--fg);max-width:min(28rem,calc(100vw - 2rem))}
dialog::backdrop{background:rgb(0 0 0/.45)}
dialog code{overflow-wrap:anywhere}
.actions{display:flex;gap:.5rem;justify-content:flex-end;margin-top:1rem}
[hidden]{display:none!important}
${USAGE_STYLE}@media (max-width:720px){
 header,main,#signin{padding:.75rem}
 table,thead,tbody,tr,td{display:block;border:0}
 thead{display:none}
 table{background:none}
 tr{background:var(--card);border:1px solid var(--line);border-radius:8px;margin-bottom:.6rem;padding:.35rem .6rem}
 td{display:flex;gap:.75rem;justify-content:space-between;padding:.25rem 0;border-bottom:1px dashed var(--line);text-align:right}
 td:last-child{border-bottom:0}
 td::before{content:attr(data-label);font-weight:600;color:var(--muted);text-align:left;flex:0 0 auto}
 td.user code{text-align:right}
}
`;

const SCRIPT = `
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const prefix = document.body.dataset.prefix;
  const refreshMs = Number(document.body.dataset.refresh) || 5000;
  const limit = 50;
  let token = null, offset = 0, query = '', data = null, fetchedAt = 0, busy = false, debounce = 0, pending = null;

  const hash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (hash) {
    try { token = decodeURIComponent(hash[1]); } catch (e) { token = null; }
    history.replaceState(null, '', location.pathname + location.search);
  }

  function show(id, on) { $(id).hidden = !on; }
  function text(el, value) { el.textContent = value == null || value === '' ? '—' : String(value); return el; }
  function el(tag, cls, value) { const e = document.createElement(tag); if (cls) e.className = cls; if (value !== undefined) text(e, value); return e; }

  function duration(ms) {
    if (ms == null) return 'never';
    if (ms <= 0) return 'now';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + s + 's';
    return s + 's';
  }
  function ago(iso) {
    const ms = Date.now() - Date.parse(iso);
    return ms < 1500 ? 'just now' : duration(ms) + ' ago';
  }

  async function api(method, path) {
    const res = await fetch(prefix + path, {
      method, cache: 'no-store', credentials: 'omit',
      headers: { authorization: 'Bearer ' + token, accept: 'application/json' },
    });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.message) || ('HTTP ' + res.status));
      err.status = res.status; err.code = body && body.error;
      throw err;
    }
    return body;
  }

  function signedOut(message) {
    token = null; data = null;
    show('app', false); show('signin', true);
    text($('signin-error'), message || ''); show('signin-error', !!message);
    $('token').value = '';
    $('token').focus();
  }

  function fail(err) {
    if (err.status === 401) return signedOut('Token refused (' + (err.code || 'unauthorized') + '): ' + err.message);
    show('table', false); show('empty', false); show('pager', false);
    text($('error'), err.status === 403
      ? 'Forbidden: ' + err.message
      : err.status ? 'Error ' + err.status + (err.code ? ' (' + err.code + ')' : '') + ': ' + err.message
      : 'Cannot reach the server (' + err.message + '); retrying every ' + Math.round(refreshMs / 1000) + ' s.');
    show('error', true);
    $('error').dataset.code = err.code || (err.status ? String(err.status) : 'network');
  }

  async function refresh() {
    if (!token || busy) return;
    busy = true;
    try {
      const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
      if (query) params.set('q', query);
      const next = await api('GET', '/contexts?' + params);
      if (!token) return;
      data = next; fetchedAt = performance.now();
      if (data.items.length === 0 && offset > 0 && data.total > 0) { offset = Math.max(0, data.total - limit); busy = false; return refresh(); }
      show('error', false);
      render();
      await refreshUsage();
    } catch (err) {
      if (token) fail(err);
    } finally {
      busy = false;
    }
  }

  function render() {
    const rows = $('rows');
    rows.replaceChildren();
    for (const c of data.items) {
      const tr = document.createElement('tr');
      tr.dataset.user = c.userUuid;
      const user = el('td', 'user'); user.dataset.label = 'User';
      user.append(el('code', '', c.userUuid));
      if (c.userUuid === data.viewer) user.append(el('span', 'you', '(you)'));
      tr.append(user);
      const cell = (label, value, cls) => { const td = el('td', cls, value); td.dataset.label = label; tr.append(td); return td; };
      cell('Provider', c.provider, 'provider');
      cell('Model', c.model, 'model');
      cell('MCP server', c.mcpServerName || c.mcpServerId, 'mcp');
      cell('Last access', ago(c.lastAccess), 'last').title = c.lastAccess;
      const left = cell('Evicts in', duration(c.expiresInMs), 'countdown');
      left.dataset.expires = c.expiresInMs == null ? '' : String(c.expiresInMs);
      cell('In flight', c.inFlight, 'inflight');
      const live = cell('Live', '', 'live'); live.replaceChildren();
      const names = Object.keys(c.resources).filter((k) => c.resources[k]);
      if (names.length === 0) live.append(el('span', 'muted', 'none'));
      for (const n of names) live.append(el('span', 'tag live', n === 'llmInstance' ? 'LLM' : n === 'mcpClient' ? 'MCP' : n));
      const act = cell('', '', 'act'); act.replaceChildren();
      const b = el('button', 'danger evict', 'Evict');
      b.type = 'button';
      b.setAttribute('aria-label', 'Evict ' + c.userUuid);
      b.addEventListener('click', () => ask(c.userUuid, c.inFlight));
      act.append(b);
      rows.append(tr);
    }
    const empty = data.items.length === 0;
    show('table', !empty); show('empty', empty);
    text($('empty'), query ? 'No active context matches "' + query + '".' : 'No active contexts: no user has made a request recently.');
    const from = empty ? 0 : data.offset + 1, to = data.offset + data.items.length;
    text($('summary'), from + '–' + to + ' of ' + data.total + (query ? ' matching' : '') + ' · ' + data.size + ' held · ' + data.requestsInFlight + ' in flight');
    show('pager', data.total > limit);
    $('prev').disabled = data.offset === 0;
    $('next').disabled = to >= data.total;
    text($('updated'), 'updated ' + new Date().toLocaleTimeString());
  }

${USAGE_SCRIPT}
  function tick() {
    if (!data) return;
    const elapsed = performance.now() - fetchedAt;
    for (const td of document.querySelectorAll('td.countdown')) {
      if (td.dataset.expires === '') continue;
      const left = Number(td.dataset.expires) - elapsed;
      text(td, duration(left));
      td.classList.toggle('soon', left < 60000);
    }
  }

  function ask(user, inFlight) {
    pending = user;
    text($('confirm-user'), user);
    text($('confirm-note'), inFlight > 0
      ? inFlight + ' request(s) in flight keep its clients until they end; then they are disposed.'
      : 'Its LLM and MCP clients are disposed now. Its next request starts from the defaults.');
    $('confirm').showModal();
  }

  async function evict() {
    const user = pending; pending = null;
    $('confirm').close();
    if (!user) return;
    try {
      await api('DELETE', '/contexts/' + encodeURIComponent(user));
      text($('notice'), 'Evicted ' + user + '.'); show('notice', true);
    } catch (err) {
      if (err.status === 404) { text($('notice'), user + ' was already gone.'); show('notice', true); }
      else return fail(err);
    }
    await refresh();
  }

  $('signin').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('token').value.trim();
    if (!value) return;
    start(value);
  });
  $('signout').addEventListener('click', () => signedOut(''));
  $('q').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { query = $('q').value.trim(); offset = 0; refresh(); }, 250);
  });
  $('prev').addEventListener('click', () => { offset = Math.max(0, offset - limit); refresh(); });
  $('next').addEventListener('click', () => { offset += limit; refresh(); });
  $('confirm-cancel').addEventListener('click', () => { pending = null; $('confirm').close(); });
  $('confirm-evict').addEventListener('click', evict);

  function start(value) {
    token = value;
    show('signin', false); show('app', true); show('notice', false); show('error', false);
    refresh();
  }

  setInterval(() => { if (!document.hidden) refresh(); }, refreshMs);
  setInterval(tick, 1000);
  if (token) start(token); else signedOut('');
})();
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

function escapeAttr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The dashboard document and the Content-Security-Policy that goes with it. */
export function renderDashboard(prefix: string, refreshMs: number, usage = false): { html: string; csp: string } {
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>User contexts · koa-user-context admin</title>
<style>${STYLE}</style>
</head>
<body data-prefix="${escapeAttr(prefix)}" data-refresh="${refreshMs}" data-usage="${usage ? '1' : '0'}">
<header><h1>User contexts</h1><span class="muted" id="updated" role="status" aria-live="polite"></span></header>
<form id="signin" hidden autocomplete="off">
  <label for="token">Admin token</label>
  <div class="row"><input id="token" type="password" spellcheck="false" placeholder="eyJhbGciOi…" required><button class="primary" type="submit">Sign in</button></div>
  <p class="hint">A JWT whose claims have <code>role: "admin"</code> (or <code>roles</code> containing <code>"admin"</code>). It is kept in this page's memory only: reloading the page forgets it.</p>
  <div id="signin-error" class="alert" role="alert" hidden></div>
</form>
<main id="app" hidden>
  <div class="toolbar">
    <input id="q" type="search" placeholder="Filter: user, provider, model, MCP server" aria-label="Filter contexts" maxlength="200">
    <span class="muted" id="summary"></span>
    <button id="signout" type="button">Sign out</button>
  </div>
  <div id="notice" class="notice" role="status" hidden></div>
  <div id="error" class="alert" role="alert" hidden></div>
  <table id="table" hidden>
    <thead><tr><th>User</th><th>Provider</th><th>Model</th><th>MCP server</th><th>Last access</th><th>Evicts in</th><th>In flight</th><th>Live</th><th><span hidden>Actions</span></th></tr></thead>
    <tbody id="rows"></tbody>
  </table>
  <p id="empty" class="empty" hidden></p>
  <nav class="pager" id="pager" hidden><button id="prev" type="button">← Previous</button><button id="next" type="button">Next →</button></nav>${usage ? USAGE_HTML : ''}
</main>
<dialog id="confirm" aria-labelledby="confirm-title">
  <p id="confirm-title"><strong>Evict the context of <code id="confirm-user"></code>?</strong></p>
  <p class="hint" id="confirm-note"></p>
  <div class="actions"><button id="confirm-cancel" type="button">Cancel</button><button id="confirm-evict" class="danger" type="button">Evict</button></div>
</dialog>
<script>${SCRIPT}</script>
</body>
</html>
`;
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}
