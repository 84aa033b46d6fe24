/**
 * The dashboard's usage table (with `adminRouter({ usage })`): usage per
 * user from `GET <prefix>/usage`, sorted by the column header clicked, with
 * each limit that refused a user's calls shown as a red tag. Spliced into
 * the dashboard's one script (its helpers `$`, `el`, `text`, `show`, `api`,
 * `ago`, `fail` are in scope there).
 *
 * @internal
 * @module
 */

export const USAGE_STYLE = `
h2{font-size:1rem;margin:1.5rem 0 .5rem}
th button{border:0;background:none;padding:0;font:inherit;color:inherit;text-transform:inherit;letter-spacing:inherit;cursor:pointer}
th button[aria-sort]::after{content:attr(data-arrow);margin-left:.25rem}
.tag.hit{border-color:var(--danger);color:var(--danger)}
tr.limited td.user code{color:var(--danger)}
`;

export const USAGE_SCRIPT = `
  let usageSort = 'tokens', usageOrder = 'desc';
  const usageOn = document.body.dataset.usage === '1';

  async function refreshUsage() {
    if (!usageOn || !token) return;
    const data = await api('GET', '/usage?' + new URLSearchParams({ sort: usageSort, order: usageOrder, limit: '100' }));
    const rows = $('usage-rows');
    rows.replaceChildren();
    for (const u of data.items) {
      const tr = document.createElement('tr');
      tr.dataset.user = u.userUuid;
      tr.classList.toggle('limited', u.limitedCount > 0);
      const cell = (label, value, cls) => { const td = el('td', cls, value); td.dataset.label = label; tr.append(td); return td; };
      cell('User', '', 'user').replaceChildren(el('code', '', u.userUuid));
      cell('Calls', u.calls, 'calls');
      cell('Tokens (in / out)', u.tokens + ' (' + u.inputTokens + ' / ' + u.outputTokens + ')', 'tokens');
      cell('Tool calls', u.toolCalls, 'tools');
      cell('Errors', u.errors, 'errors');
      const hit = cell('Limited', '', 'limited');
      hit.replaceChildren();
      const names = Object.keys(u.limited);
      if (names.length === 0) hit.append(el('span', 'muted', 'no'));
      for (const n of names) hit.append(el('span', 'tag hit', n + ' ×' + u.limited[n]));
      cell('Last call', u.lastCallAt ? ago(u.lastCallAt) : null, 'lastcall');
      rows.append(tr);
    }
    for (const b of document.querySelectorAll('#usage-table button[data-sort]')) {
      const on = b.dataset.sort === usageSort;
      if (on) { b.setAttribute('aria-sort', usageOrder === 'asc' ? 'ascending' : 'descending'); b.dataset.arrow = usageOrder === 'asc' ? '↑' : '↓'; }
      else b.removeAttribute('aria-sort');
    }
    text($('usage-summary'), data.total + ' user(s) with usage · ' + data.backend);
    show('usage', true);
  }

  for (const b of document.querySelectorAll('#usage-table button[data-sort]')) {
    b.addEventListener('click', () => {
      const s = b.dataset.sort;
      if (usageSort === s) usageOrder = usageOrder === 'desc' ? 'asc' : 'desc';
      else { usageSort = s; usageOrder = s === 'userUuid' ? 'asc' : 'desc'; }
      refreshUsage().catch(fail);
    });
  }
`;

const COLUMNS: ReadonlyArray<[string, string]> = [
  ['userUuid', 'User'], ['calls', 'Calls'], ['tokens', 'Tokens (in / out)'], ['toolCalls', 'Tool calls'],
  ['errors', 'Errors'], ['limited', 'Limited'], ['lastCall', 'Last call'],
];

export const USAGE_HTML = `
  <section id="usage" hidden>
    <h2>Usage per user <span class="muted" id="usage-summary"></span></h2>
    <table id="usage-table">
      <thead><tr>${COLUMNS.map(([key, label]) => `<th><button type="button" data-sort="${key}">${label}</button></th>`).join('')}</tr></thead>
      <tbody id="usage-rows"></tbody>
    </table>
  </section>`;
