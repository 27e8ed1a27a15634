// codeframe dashboard: projects, pause and resume, checkpoints, context, live events.
// Plain JavaScript, no build step, nothing loaded from elsewhere. Data is always inserted as
// text (never as HTML).
'use strict';

const TOKEN_KEY = 'codeframe.token';
const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  view: null,        // { kind: 'list' } or { kind: 'project', id }
  lastSeq: new Map(), // project id -> seq of the last event handled
  ws: null,
  wsRetry: 0,
  refreshTimer: null,
  filesChanged: new Map(), // checkpoint id -> { text, at }: changed-file counts, asked rarely
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function number(n) {
  return typeof n === 'number' ? n.toLocaleString() : String(n ?? '');
}

function badge(status) {
  return el('span', { class: `badge status-${status}`, 'data-status': status }, status);
}

function showError(e) {
  const box = document.getElementById('errors');
  const code = e && e.code ? ` (${e.code})` : '';
  box.textContent = `${e && e.message ? e.message : String(e)}${code}`;
  box.hidden = false;
}

function clearError() {
  const box = document.getElementById('errors');
  box.hidden = true;
  box.textContent = '';
}

class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error ? body.error : null;
    super(err ? err.message : `HTTP ${status}`);
    this.status = status;
    this.code = err ? err.code : null;
    this.details = err ? err.details : null;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error(`cannot reach the server: ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401) signOut('The token was refused: sign in again.');
    throw new ApiError(res.status, data);
  }
  return data;
}

// Runs an action from a button: disables it meanwhile, shows any error as the API words it.
async function act(button, fn) {
  clearError();
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------------ sign-in

function renderSignIn(message) {
  const main = document.getElementById('main');
  document.getElementById('sign-out').hidden = true;
  const input = el('input', { id: 'token', type: 'password', name: 'token', autocomplete: 'off', required: true });
  const form = el('form', { class: 'inline', id: 'sign-in', onsubmit: async (ev) => {
    ev.preventDefault();
    state.token = input.value.trim();
    const ok = await act(form.querySelector('button'), async () => {
      await api('GET', '/api/projects');
      return true;
    });
    if (ok) {
      sessionStorage.setItem(TOKEN_KEY, state.token);
      route();
    } else {
      state.token = null;
    }
  } },
    el('div', { class: 'field' }, el('label', { for: 'token' }, 'API token'), input),
    el('button', { type: 'submit' }, 'Sign in'));
  main.replaceChildren(
    el('h1', {}, 'Sign in'),
    el('section', {},
      el('p', {}, 'Paste a codeframe API token (', el('code', {}, 'codeframe token create'), '). It is kept for this tab only.'),
      message ? el('p', { class: 'muted', role: 'status' }, message) : null,
      form));
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.lastSeq.clear();
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  setConnection('');
  renderSignIn(message);
}

// ------------------------------------------------------------------ live events

function setConnection(text) {
  document.getElementById('connection').textContent = text;
}

function subscribedProjects() {
  if (!state.view) return [];
  if (state.view.kind === 'project') return [state.view.id];
  return state.view.ids || [];
}

function subscribe(ws, id) {
  const since = state.lastSeq.get(id);
  const msg = { type: 'subscribe', project_id: id };
  if (since !== undefined) msg.since = since;
  ws.send(JSON.stringify(msg));
}

function connect() {
  if (!state.token || state.ws) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  state.ws = ws;
  setConnection('connecting…');
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.token }));
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (_) { return; }
    onMessage(ws, m);
  };
  ws.onclose = () => {
    state.ws = null;
    if (!state.token) return;
    setConnection('reconnecting…');
    const delay = Math.min(5000, 250 * 2 ** state.wsRetry++);
    setTimeout(connect, delay);
  };
}

function onMessage(ws, m) {
  switch (m.type) {
    case 'authenticated':
      state.wsRetry = 0;
      setConnection('live');
      for (const id of subscribedProjects()) subscribe(ws, id);
      return;
    case 'subscribed':
      if (m.seq !== undefined && !state.lastSeq.has(m.project_id)) state.lastSeq.set(m.project_id, m.seq);
      return;
    case 'gap':
      // Events were pruned: reload, then go on from the log's head.
      state.lastSeq.set(m.project_id, m.head);
      scheduleRefresh();
      return;
    case 'unsubscribed': case 'pong':
      return;
    case 'error':
      showError(m.error || m);
      return;
    default:
      if (typeof m.seq === 'number' && typeof m.project_id === 'number') onEvent(m);
  }
}

function onEvent(e) {
  const last = state.lastSeq.get(e.project_id);
  if (last !== undefined && e.seq <= last) return; // already handled
  state.lastSeq.set(e.project_id, e.seq);
  if (state.view && state.view.kind === 'project' && state.view.id === e.project_id) appendEvent(e, true);
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => refresh().catch(showError), 100);
}

function resubscribe() {
  const ws = state.ws;
  if (ws && ws.readyState === WebSocket.OPEN) for (const id of subscribedProjects()) subscribe(ws, id);
  else connect();
}

// ------------------------------------------------------------------ projects list

async function renderList() {
  const main = document.getElementById('main');
  const data = await api('GET', '/api/projects');
  const projects = data.projects || [];
  const newIds = projects.map((p) => p.id).filter((id) => !subscribedProjects().includes(id));
  state.view = { kind: 'list', ids: projects.map((p) => p.id) };
  const list = el('ul', { class: 'projects', id: 'projects' }, projects.map(projectItem));
  main.replaceChildren(el('h1', {}, 'Projects'),
    projects.length ? list : el('p', { class: 'muted' }, 'No projects yet: run `codeframe init` in a project directory.'));
  for (const id of newIds) if (state.ws && state.ws.readyState === WebSocket.OPEN) subscribe(state.ws, id);
}

function projectItem(p) {
  return el('li', { 'data-project-id': p.id },
    el('a', { href: `#/projects/${p.id}` }, p.name), badge(p.status),
    p.status === 'paused'
      ? el('span', { class: 'muted' }, `paused since ${time(p.paused_at)}${p.pause_reason ? ` — ${p.pause_reason}` : ''}`)
      : el('span', { class: 'muted' }, `phase ${p.phase}`));
}

// ------------------------------------------------------------------ project page

function renderProjectShell(id) {
  const main = document.getElementById('main');
  const reason = el('input', { id: 'pause-reason', type: 'text', name: 'reason', maxlength: 500 });
  const restoreFiles = el('input', { id: 'restore-files', type: 'checkbox', name: 'restore_files' });
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/' }, '← Projects')),
    el('h1', { id: 'project-title' }, 'Project'),
    el('section', { 'aria-labelledby': 'status-h' },
      el('h2', { id: 'status-h' }, 'Status'),
      el('p', { id: 'project-status' })),
    el('div', { class: 'grid' },
      el('section', { 'aria-labelledby': 'pause-h' },
        el('h2', { id: 'pause-h' }, 'Pause'),
        el('form', { class: 'inline', id: 'pause-form', onsubmit: (ev) => { ev.preventDefault(); pause(id, ev.submitter || ev.target.querySelector('button')); } },
          el('div', { class: 'field' }, el('label', { for: 'pause-reason' }, 'Reason (optional)'), reason),
          el('button', { type: 'submit', id: 'pause-button' }, 'Pause')),
        el('div', { id: 'pause-result', class: 'result', role: 'status', 'aria-live': 'polite' })),
      el('section', { 'aria-labelledby': 'resume-h' },
        el('h2', { id: 'resume-h' }, 'Resume'),
        el('form', { class: 'inline', id: 'resume-form', onsubmit: (ev) => { ev.preventDefault(); resume(id, ev.submitter || ev.target.querySelector('button')); } },
          el('div', { class: 'field' }, el('label', {}, restoreFiles, ' Also restore the files from the pause checkpoint (overwrites edits made while paused)')),
          el('button', { type: 'submit', id: 'resume-button' }, 'Resume')),
        el('div', { id: 'resume-result', class: 'result', role: 'status', 'aria-live': 'polite' }))),
    el('div', { class: 'grid' },
      el('section', { 'aria-labelledby': 'context-h' },
        el('h2', { id: 'context-h' }, 'Context'),
        el('div', { id: 'context-chart', class: 'bars', role: 'img', 'aria-label': 'Active context by tier' }),
        el('div', { class: 'table-wrap' }, el('table', { id: 'agents-table' }))),
      el('section', { 'aria-labelledby': 'events-h' },
        el('h2', { id: 'events-h' }, 'Events'),
        el('ol', { id: 'event-feed', class: 'feed', 'aria-live': 'polite', 'aria-relevant': 'additions' }))),
    el('section', { 'aria-labelledby': 'checkpoints-h' },
      el('h2', { id: 'checkpoints-h' }, 'Checkpoints'),
      el('div', { class: 'table-wrap' }, el('table', { id: 'checkpoints' })),
      el('div', { id: 'checkpoint-detail' })));
}

async function renderProject(id) {
  const first = !state.view || state.view.kind !== 'project' || state.view.id !== id;
  state.view = { kind: 'project', id };
  if (first) {
    renderProjectShell(id);
    await loadEvents(id);
    resubscribe();
  }
  await refreshProject(id);
}

async function refreshProject(id) {
  const [p, status, agents, cps] = await Promise.all([
    api('GET', `/api/projects/${id}`),
    api('GET', `/api/projects/${id}/pause-status`),
    api('GET', `/api/projects/${id}/agents`),
    api('GET', `/api/projects/${id}/checkpoints`),
  ]);
  if (!state.view || state.view.id !== id) return;
  document.title = `${p.name} — codeframe`;
  document.getElementById('project-title').replaceChildren(p.name, ' ', badge(p.status));
  document.getElementById('project-status').replaceChildren(
    'Status ', el('strong', { id: 'status-text' }, p.status), `, phase ${p.phase}`,
    p.status === 'paused' ? `, paused since ${time(p.paused_at)}` : '',
    p.pause_reason ? ` — “${p.pause_reason}”` : '',
    p.pause_checkpoint_id ? ` (checkpoint ${p.pause_checkpoint_id})` : '');
  document.getElementById('pause-button').disabled = p.status === 'paused';
  document.getElementById('resume-button').disabled = p.status !== 'paused';
  renderChart(status.token_totals || {});
  await renderAgents(id, agents.agents || []);
  renderCheckpoints(id, cps.checkpoints || []);
}

// A bar's fill; its width set through the CSSOM (the page's CSP allows no inline style).
function fill(tier, percent) {
  const f = el('div', { class: `fill ${tier}` });
  f.style.width = `${percent.toFixed(1)}%`;
  return f;
}

function renderChart(t) {
  const tiers = [['hot', 'HOT'], ['warm', 'WARM'], ['cold', 'COLD']];
  const max = Math.max(1, ...tiers.map(([k]) => t[`${k}_tokens`] || 0));
  const chart = document.getElementById('context-chart');
  chart.replaceChildren(...tiers.map(([k, label]) => {
    const tokens = t[`${k}_tokens`] || 0;
    const items = t[`${k}_items`] || 0;
    return el('div', { class: 'bar', 'data-tier': k },
      el('span', {}, label),
      el('div', { class: 'track' }, fill(k, (100 * tokens) / max)),
      el('span', { class: 'value' }, `${number(items)} items, ${number(tokens)} tokens`));
  }));
  chart.setAttribute('aria-label', tiers.map(([k, label]) => `${label}: ${t[`${k}_items`] || 0} items, ${t[`${k}_tokens`] || 0} tokens`).join('; '));
}

async function renderAgents(id, agents) {
  const rows = await Promise.all(agents.map((a) => api('GET', `/api/projects/${id}/agents/${encodeURIComponent(a)}/context/stats`)
    .then((s) => [a, s]).catch(() => [a, null])));
  const table = document.getElementById('agents-table');
  if (!table) return;
  table.replaceChildren(
    el('caption', { class: 'muted' }, agents.length ? 'Agents and their active context (tokens)' : 'No agents'),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Agent'), el('th', { scope: 'col' }, 'HOT'), el('th', { scope: 'col' }, 'WARM'), el('th', { scope: 'col' }, 'COLD'))),
    el('tbody', {}, rows.map(([a, s]) => el('tr', { 'data-agent': a },
      el('td', {}, a),
      el('td', {}, s ? number(s.hot_tokens) : '—'),
      el('td', {}, s ? number(s.warm_tokens) : '—'),
      el('td', {}, s ? number(s.cold_tokens) : '—')))));
}

function renderCheckpoints(id, cps) {
  const table = document.getElementById('checkpoints');
  if (!table) return;
  table.replaceChildren(
    el('thead', {}, el('tr', {}, ['Name', 'Trigger', 'Time', 'Files changed since', ''].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, cps.map((c) => {
      const files = el('td', { class: 'files-changed' }, '…');
      const row = el('tr', { 'data-checkpoint-id': c.id },
        el('td', {}, `${c.name}${c.pinned ? ' (pinned)' : ''}`),
        el('td', {}, c.trigger),
        el('td', {}, time(c.created_at)),
        files,
        el('td', {},
          el('button', { type: 'button', class: 'secondary diff-button', onclick: (ev) => showDiff(id, c, ev.currentTarget) }, 'Diff'), ' ',
          el('button', { type: 'button', class: 'secondary restore-button', onclick: (ev) => previewRestore(id, c, ev.currentTarget) }, 'Restore…')));
      return row;
    })));
  // Changed-file counts (a diff walks the whole tree): the ten newest checkpoints, each asked
  // again at most every 30 s, whatever the number of events.
  const now = Date.now();
  for (const c of cps.slice(0, 10)) {
    const cell = () => table.querySelector(`tr[data-checkpoint-id="${c.id}"] .files-changed`);
    const known = state.filesChanged.get(c.id);
    if (known) cell().textContent = known.text;
    if (known && now - known.at < 30000) continue;
    state.filesChanged.set(c.id, { text: known ? known.text : '…', at: now });
    api('GET', `/api/projects/${id}/checkpoints/${c.id}/diff`)
      .then((d) => number((d.files || []).length))
      .catch(() => '?')
      .then((text) => {
        state.filesChanged.set(c.id, { text, at: Date.now() });
        const td = cell();
        if (td) td.textContent = text;
      });
  }
  for (const c of cps.slice(10)) {
    const td = table.querySelector(`tr[data-checkpoint-id="${c.id}"] .files-changed`);
    if (td) td.textContent = '—';
  }
}

async function showDiff(id, c, button) {
  const d = await act(button, () => api('GET', `/api/projects/${id}/checkpoints/${c.id}/diff?unified=true`));
  if (!d) return;
  const detail = document.getElementById('checkpoint-detail');
  const pre = el('pre', { class: 'diff', id: 'diff-text', tabindex: 0, 'aria-label': 'Unified diff' });
  const files = d.files || [];
  detail.replaceChildren(
    el('h2', { id: 'diff-h' }, `Checkpoint “${c.name}” → working tree`),
    files.length
      ? el('ul', { class: 'files', id: 'diff-files', 'aria-labelledby': 'diff-h' }, files.map((f) => el('li', {},
        el('button', { type: 'button', 'data-path': f.path, onclick: () => {
          pre.textContent = f.unified || `${f.path}: ${f.change} (binary or too large for a text diff)`;
        } }, `${f.change}: ${f.path}`))))
      : el('p', { class: 'muted' }, 'No file differs.'),
    pre);
  if (files.length) pre.textContent = files[0].unified || `${files[0].path}: ${files[0].change}`;
}

async function previewRestore(id, c, button) {
  const what = { files: true, state: true, context: true };
  const preview = await act(button, () => api('POST', `/api/projects/${id}/checkpoints/${c.id}/restore`, { ...what, preview: true }));
  if (!preview) return;
  const detail = document.getElementById('checkpoint-detail');
  const changes = (preview.diff && preview.diff.files) || [];
  const unsaved = preview.unsaved_changes || [];
  const confirm = el('button', { type: 'button', id: 'confirm-restore', onclick: async (ev) => {
    const report = await act(ev.currentTarget, () => api('POST', `/api/projects/${id}/checkpoints/${c.id}/restore`, { ...what, force: unsaved.length > 0 }));
    if (!report) return;
    detail.replaceChildren(el('p', { role: 'status', id: 'restore-result' },
      `Restored checkpoint ${c.id}: ${report.files_written} files written, ${report.files_removed} removed, ${report.items_restored} context items. `,
      report.safety_checkpoint_id ? `Everything before is in checkpoint ${report.safety_checkpoint_id} (undo with \`codeframe checkpoints undo\`).` : ''));
    scheduleRefresh();
  } }, 'Confirm restore');
  detail.replaceChildren(el('div', { class: 'confirm', role: 'dialog', 'aria-labelledby': 'restore-h' },
    el('h2', { id: 'restore-h' }, `Restore “${c.name}”?`),
    el('p', {}, `Files, project state and context go back to checkpoint ${c.id}. ${changes.length} file(s) change:`),
    el('ul', { class: 'files' }, changes.map((f) => el('li', {}, `${f.change}: ${f.path}`))),
    unsaved.length ? el('p', { role: 'alert' }, `${unsaved.length} of them changed since the latest checkpoint and are saved nowhere else: ${unsaved.join(', ')}`) : null,
    confirm, ' ',
    el('button', { type: 'button', class: 'secondary', onclick: () => detail.replaceChildren() }, 'Cancel')));
  confirm.focus();
}

async function pause(id, button) {
  const reason = document.getElementById('pause-reason').value.trim();
  const out = await act(button, () => api('POST', `/api/projects/${id}/pause`, reason ? { reason } : {}));
  if (!out) return;
  document.getElementById('pause-result').replaceChildren(
    `Paused: checkpoint ${out.checkpoint_id}, ${number(out.items_archived)} items archived, `,
    `${number(out.tokens_before)} → ${number(out.tokens_after)} tokens (${out.reduction_percentage.toFixed(1)}% less)`,
    out.interrupted_agents && out.interrupted_agents.length ? `; interrupted: ${out.interrupted_agents.join(', ')}` : '');
  scheduleRefresh();
}

async function resume(id, button) {
  const restoreFiles = document.getElementById('restore-files').checked;
  const out = await act(button, () => api('POST', `/api/projects/${id}/resume`, { restore_files: restoreFiles }));
  if (!out) return;
  const changed = out.files_changed || [];
  document.getElementById('resume-result').replaceChildren(
    `Resumed (${out.status}) from checkpoint ${out.checkpoint_id}: ${number(out.items_restored)} context items restored. `,
    changed.length
      ? `Files changed while paused (${out.files_restored ? 'restored from the checkpoint' : 'kept'}): ${changed.join(', ')}`
      : 'No file changed while paused.',
    (out.warnings || []).length ? ` Warnings: ${out.warnings.join('; ')}` : '');
  scheduleRefresh();
}

// ------------------------------------------------------------------ the event feed

function describe(e) {
  const skip = new Set(['seq', 'type', 'project_id', 'timestamp']);
  const fields = Object.entries(e).filter(([k]) => !skip.has(k)).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`);
  return `#${e.seq} ${time(e.timestamp)} ${e.type}${fields.length ? ' — ' + fields.join(' ') : ''}`;
}

function appendEvent(e, live) {
  const feed = document.getElementById('event-feed');
  if (!feed || feed.querySelector(`li[data-seq="${e.seq}"]`)) return;
  const item = el('li', { 'data-seq': e.seq, 'data-type': e.type }, describe(e));
  if (live) feed.prepend(item); else feed.append(item);
  while (feed.children.length > 200) feed.lastChild.remove();
}

async function loadEvents(id) {
  // The newest page of the log (oldest first), shown newest first; live events follow from
  // the last one.
  let since = 0;
  let page;
  let all = [];
  do {
    page = await api('GET', `/api/projects/${id}/events?since=${since}&limit=1000`);
    all = all.concat(page.events || []).slice(-200);
    since = page.next_since;
  } while (page.has_more);
  const feed = document.getElementById('event-feed');
  feed.replaceChildren();
  for (const e of all.reverse()) appendEvent(e, false);
  state.lastSeq.set(id, all.length ? all[0].seq : (page.head || 0));
}

// ------------------------------------------------------------------ routing

async function refresh() {
  if (!state.token || !state.view) return;
  if (state.view.kind === 'project') await refreshProject(state.view.id);
  else await renderList();
}

async function route() {
  if (!state.token) return renderSignIn();
  document.getElementById('sign-out').hidden = false;
  const m = location.hash.match(/^#\/projects\/(\d+)$/);
  try {
    if (m) await renderProject(Number(m[1]));
    else await renderList();
    connect();
  } catch (e) {
    showError(e);
  }
}

window.addEventListener('hashchange', () => { clearError(); state.view = null; route(); });
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));
  route();
});
