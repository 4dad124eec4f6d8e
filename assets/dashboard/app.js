// Koor dashboard. Plain JavaScript, no build step, nothing loaded from elsewhere.
//
// List-then-watch: read /api/metrics for the last event id, then the listings (state, instances,
// rules, recent events), then follow /api/events/subscribe from that id, so nothing is missed
// between the two and nothing shows twice. koor.* system events tell the page what changed; it
// re-reads the affected listing (koor.task.* the shown task board). Instance heartbeats publish no event, so the instance list is
// re-read every few seconds for the last-seen ages.
//
// Everything from the server is put in the page as text (textContent), never as HTML.

'use strict';

const TOKEN_KEY = 'koor.token';
const MAX_EVENTS = 300;
const POLL_MS = 5000;

const app = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  lastId: 0,            // highest event id shown
  since: null,          // highest id the stream delivered (where a reconnect resumes)
  events: new Map(),    // id -> event
  ws: null,
  retryMs: 1000,
  retryTimer: null,
  paused: false,
  pausedQueue: [],
  filter: '',
  showSystem: true,
  staleAfter: null,
  refreshTimers: {},
  board: sessionStorage.getItem('koor.board') || '',  // the project whose task board is shown
};

class AuthError extends Error {}

// ----- helpers -----

const $ = (id) => document.getElementById(id);

// h('td', {class: 'num', title: 'x'}, 'text', childNode, ...)
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('data-')) el.setAttribute(k, v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function ago(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(11, 19);
}

function preview(data) {
  if (data === undefined || data === null) return '';
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  return text.length > 160 ? text.slice(0, 157) + '…' : text;
}

function toast(message, kind) {
  const el = $('toast');
  el.textContent = message;
  el.className = 'toast ' + (kind || '');
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

async function api(path, options) {
  const opts = Object.assign({}, options);
  opts.headers = Object.assign({}, opts.headers);
  if (app.token) opts.headers.Authorization = 'Bearer ' + app.token;
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers['Content-Type'] = 'application/json';
    delete opts.json;
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    askToken(app.token ? 'That token was refused.' : '');
    throw new AuthError('unauthorized');
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error((body && body.error) || resp.status + ' ' + resp.statusText);
  return body;
}

// Re-reads a listing soon, once, however many events asked for it.
function refreshSoon(name, fn) {
  if (app.refreshTimers[name]) return;
  app.refreshTimers[name] = setTimeout(() => {
    app.refreshTimers[name] = null;
    fn().catch(report);
  }, 150);
}

function report(err) {
  if (err instanceof AuthError) return;
  console.warn(err);
  toast(String(err.message || err), 'bad');
}

// ----- token -----

function askToken(error) {
  setConn('auth', 'token needed');
  const err = $('login-error');
  err.textContent = error || '';
  err.hidden = !error;
  $('login').hidden = false;
  $('token').focus();
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  app.token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem(TOKEN_KEY, app.token);
  $('login').hidden = true;
  start();
});

$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  app.token = '';
  if (app.ws) app.ws.close();
  askToken('');
});

// ----- header -----

function setConn(kind, text) {
  const el = $('conn');
  el.className = 'badge ' + kind;
  el.textContent = text;
  document.body.dataset.live = kind === 'live' ? '1' : '0';
}

async function loadHealth() {
  try {
    const resp = await fetch('/health');
    const hdata = await resp.json();
    const el = $('health');
    el.className = 'badge ' + (hdata.status === 'ok' ? 'ok' : 'bad');
    el.textContent = `${hdata.status} · up ${hdata.uptime}` + (hdata.version ? ` · v${hdata.version}` : '');
  } catch (e) {
    const el = $('health');
    el.className = 'badge bad';
    el.textContent = 'server unreachable';
  }
}

// ----- state -----

async function loadState() {
  const keys = await api('/api/state');
  $('count-keys').textContent = keys.length;
  const rows = keys.map((k) => h('tr', {'data-key': k.key},
    h('td', {class: 'key mono', title: k.key}, k.key),
    h('td', {class: 'num'}, h('span', {class: 'version'}, 'v' + k.version)),
    h('td', {class: 'muted', title: k.content_type}, k.content_type.replace(/^application\//, '')),
    h('td', {class: 'num muted', 'data-ago': k.updated_at, title: k.updated_at}, ago(k.updated_at))));
  $('state').replaceChildren(...rows);
  $('state-empty').hidden = keys.length > 0;
}

// ----- instances -----

async function loadInstances() {
  const list = await api('/api/instances');
  const order = {stale: 0, active: 1, pending: 2};
  list.sort((a, b) => (order[a.status] ?? 3) - (order[b.status] ?? 3) || a.name.localeCompare(b.name));
  const stale = list.filter((i) => i.status === 'stale').length;
  $('count-instances').textContent = list.length;
  $('count-stale').textContent = stale;
  $('count-stale').parentElement.classList.toggle('zero', stale === 0);
  const rows = list.map((i) => h('tr', {class: i.status === 'stale' ? 'stale' : '', 'data-instance': i.id},
    h('td', {}, h('span', {class: 'pill ' + i.status}, i.status === 'stale' ? '⚠ stale' : i.status)),
    h('td', {class: 'strong', title: i.id}, i.name),
    h('td', {class: 'muted ellipsis', title: [i.workspace, i.intent].filter(Boolean).join(' · ')},
      [i.workspace, i.intent].filter(Boolean).join(' · ') || '—'),
    h('td', {class: 'num muted', 'data-ago': i.last_seen, title: i.last_seen}, ago(i.last_seen))));
  $('instances').replaceChildren(...rows);
  $('instances-empty').hidden = list.length > 0;
}

// ----- task boards -----

// Time left on a claim: "4m12s", "38s", or "expired".
function left(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.round((t - Date.now()) / 1000);
  if (s <= 0) return 'expired';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
}

// The boards (projects with tasks) in the selector, then the selected board: claimed first, then
// ready, open, failed, done, cancelled; by priority and age within each.
async function loadTasks() {
  const {boards} = await api('/api/tasks');
  if (!boards.some((b) => b.project === app.board)) app.board = boards.length ? boards[0].project : '';
  const select = $('task-board');
  select.replaceChildren(...boards.map((b) => h('option', {value: b.project, selected: b.project === app.board}, b.project)));
  select.hidden = boards.length === 0;
  if (!app.board) {
    $('tasks').replaceChildren();
    $('task-counts').textContent = '';
    $('tasks-empty').hidden = false;
    return;
  }
  const board = await api('/api/tasks/' + encodeURIComponent(app.board));
  const tasks = board.tasks || [];
  const rank = (t) => (t.status === 'claimed' ? 0 : t.ready ? 1 : {open: 2, failed: 3, done: 4, cancelled: 5}[t.status] ?? 6);
  tasks.sort((a, b) => rank(a) - rank(b));
  const counts = {};
  for (const t of tasks) counts[t.status] = (counts[t.status] || 0) + 1;
  $('task-counts').textContent = ['claimed', 'open', 'done', 'failed'].filter((k) => counts[k]).map((k) => counts[k] + ' ' + k).join(' · ');
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const rows = tasks.map((t) => {
    const waits = (t.depends_on || []).filter((d) => (byId.get(d) || {}).status !== 'done');
    const status = t.status === 'open' && t.ready ? 'ready' : t.status;
    const claim = t.claim;
    return h('tr', {class: 'task ' + status, 'data-task': t.id, 'data-status': status},
      h('td', {}, h('span', {class: 'pill ' + status}, status)),
      h('td', {class: 'mono', title: t.attempts ? t.attempts + ' earlier attempt(s)' : null}, t.id),
      h('td', {class: 'ellipsis', title: [t.title, (t.labels || []).join(', ')].filter(Boolean).join(' · ')},
        h('span', {class: 'strong'}, t.title),
        waits.length ? h('span', {class: 'muted'}, ' · waits for ' + waits.join(', ')) : null),
      h('td', {class: 'holder', title: claim ? claim.holder.id : null}, claim ? claim.holder.name : '—'),
      h('td', {class: 'num muted', 'data-left': claim ? claim.expires_at : null, title: claim ? claim.expires_at : null},
        claim ? left(claim.expires_at) : ''));
  });
  $('tasks').replaceChildren(...rows);
  $('tasks-empty').hidden = tasks.length > 0;
}

$('task-board').addEventListener('change', (ev) => {
  app.board = ev.target.value;
  sessionStorage.setItem('koor.board', app.board);
  loadTasks().catch(report);
});

// ----- rule proposals -----

async function loadProposals() {
  const body = await api('/api/rules?status=proposed');
  const rules = body.rules || [];
  $('count-proposals').textContent = rules.length;
  $('count-proposals').parentElement.classList.toggle('zero', rules.length === 0);
  const cards = rules.map((r) => {
    const id = r.project + '/' + r.rule_id;
    const meta = [r.proposed_by && 'by ' + r.proposed_by,
      (r.applies_to || []).length ? 'files ' + r.applies_to.join(', ') : null,
      r.stack ? 'stack ' + r.stack : null,
      r.context].filter(Boolean).join(' · ');
    return h('li', {class: 'card', 'data-rule': id},
      h('div', {class: 'card-head'},
        h('span', {class: 'rule-id mono'}, id),
        h('span', {class: 'pill ' + r.severity}, r.severity),
        h('span', {class: 'pill'}, r.match_type),
        h('span', {class: 'actions'},
          h('button', {type: 'button', class: 'primary small', 'data-decide': 'accept', 'data-project': r.project, 'data-rule-id': r.rule_id}, 'Accept'),
          h('button', {type: 'button', class: 'secondary small', 'data-decide': 'reject', 'data-project': r.project, 'data-rule-id': r.rule_id}, 'Reject'))),
      h('div', {class: 'rule-body'},
        h('code', {class: 'pattern', title: 'pattern'}, r.pattern),
        r.message ? h('span', {class: 'message'}, r.message) : null),
      meta ? h('p', {class: 'meta muted'}, meta) : null);
  });
  $('proposals').replaceChildren(...cards);
  $('proposals-empty').hidden = rules.length > 0;
}

$('proposals').addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-decide]');
  if (!btn) return;
  const {decide, project, ruleId} = btn.dataset;
  const card = btn.closest('.card');
  card.querySelectorAll('button').forEach((b) => { b.disabled = true; });
  try {
    const path = `/api/rules/${encodeURIComponent(project)}/${encodeURIComponent(ruleId)}/${decide}`;
    const res = await api(path, {method: 'POST'});
    toast(`${project}/${ruleId} ${res.status}`, 'good');
    await loadProposals();
  } catch (err) {
    card.querySelectorAll('button').forEach((b) => { b.disabled = false; });
    report(err);
  }
});

// ----- events -----

function isSystem(e) { return e.topic === 'koor' || e.topic.startsWith('koor.'); }

function visible(e) {
  if (!app.showSystem && isSystem(e)) return false;
  if (!app.filter) return true;
  const f = app.filter.toLowerCase();
  return e.topic.toLowerCase().includes(f) || preview(e.data).toLowerCase().includes(f)
    || (e.source || '').toLowerCase().includes(f);
}

// System events carry small data (key, version, id, ...): shown as `key=value` pairs, the
// identifying ones first. Other events show their JSON.
const SUMMARY_FIRST = ['key', 'project', 'name', 'rule_id', 'version', 'status', 'count', 'id'];
function summary(e) {
  const d = e.data;
  if (!isSystem(e) || !d || typeof d !== 'object' || Array.isArray(d)) return preview(d);
  const keys = Object.keys(d).filter((k) => k !== 'hash' && k !== 'content_type');
  keys.sort((a, b) => {
    const ia = SUMMARY_FIRST.indexOf(a), ib = SUMMARY_FIRST.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const text = keys.map((k) => {
    let v = d[k];
    if (k === 'id' && typeof v === 'string' && v.length > 12) v = v.slice(0, 8);
    return k + '=' + (typeof v === 'string' ? v : JSON.stringify(v));
  }).join('  ');
  return text.length > 160 ? text.slice(0, 157) + '…' : text;
}

function eventRow(e) {
  return h('li', {class: 'event' + (isSystem(e) ? ' system' : ''), 'data-id': e.id, 'data-topic': e.topic},
    h('span', {class: 'time mono', title: e.created_at}, clock(e.created_at)),
    h('span', {class: 'id mono'}, '#' + e.id),
    h('span', {class: 'topic mono'}, e.topic),
    h('span', {class: 'source muted'}, e.source || ''),
    h('span', {class: 'data mono', title: preview(e.data)}, summary(e)));
}

function renderEvents() {
  const list = [...app.events.values()].filter(visible).sort((a, b) => b.id - a.id);
  $('events').replaceChildren(...list.map(eventRow));
  $('events-empty').hidden = list.length > 0;
}

function trimEvents() {
  if (app.events.size <= MAX_EVENTS) return;
  const ids = [...app.events.keys()].sort((a, b) => a - b);
  for (const id of ids.slice(0, ids.length - MAX_EVENTS)) app.events.delete(id);
}

// A live event: shown at the top, and the listing it concerns is re-read.
function onEvent(e) {
  if (typeof e.id !== 'number') return;
  if (app.since === null || e.id > app.since) app.since = e.id;
  if (app.events.has(e.id)) return;
  if (e.id > app.lastId) app.lastId = e.id;
  $('count-last-id').textContent = app.lastId;
  if (e.topic.startsWith('koor.state.')) refreshSoon('state', loadState);
  else if (e.topic.startsWith('koor.instance.')) refreshSoon('instances', loadInstances);
  else if (e.topic.startsWith('koor.rule.')) refreshSoon('rules', loadProposals);
  else if (e.topic.startsWith('koor.task.')) refreshSoon('tasks', loadTasks);
  if (app.paused) { app.pausedQueue.push(e); return; }
  app.events.set(e.id, e);
  const list = $('events');
  if (visible(e)) {
    const row = eventRow(e);
    row.classList.add('fresh');
    // Newest first; an event older than the top one (a replay) goes through a full render.
    const top = list.firstElementChild;
    if (!top || Number(top.dataset.id) < e.id) list.prepend(row); else renderEvents();
    $('events-empty').hidden = true;
  }
  if (app.events.size > MAX_EVENTS) { trimEvents(); renderEvents(); }
}

async function loadHistory() {
  const [user, system] = await Promise.all([
    api('/api/events/history?last=100'),
    api('/api/events/history?last=100&topic=' + encodeURIComponent('koor.**')),
  ]);
  for (const e of [...user, ...system]) {
    app.events.set(e.id, e);
    if (e.id > app.lastId) app.lastId = e.id;
  }
  trimEvents();
  renderEvents();
}

$('event-filter').addEventListener('input', (ev) => { app.filter = ev.target.value.trim(); renderEvents(); });
$('show-system').addEventListener('change', (ev) => { app.showSystem = ev.target.checked; renderEvents(); });
$('pause').addEventListener('click', () => {
  app.paused = !app.paused;
  $('pause').textContent = app.paused ? `resume (${app.pausedQueue.length})` : 'pause';
  $('pause').classList.toggle('active', app.paused);
  if (!app.paused) {
    const queued = app.pausedQueue.splice(0);
    for (const e of queued) app.events.set(e.id, e);
    trimEvents();
    renderEvents();
  }
});

// ----- the event stream -----

function connect() {
  clearTimeout(app.retryTimer);
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const params = new URLSearchParams();
  params.append('pattern', '*');
  params.append('pattern', 'koor.**');
  params.append('since', String(app.since || 0));
  if (app.token) params.append('token', app.token);
  const ws = new WebSocket(`${proto}://${location.host}/api/events/subscribe?${params}`);
  app.ws = ws;
  ws.onopen = () => {
    app.retryMs = 1000;
    setConn('live', '● live');
  };
  ws.onmessage = (msg) => {
    try { onEvent(JSON.parse(msg.data)); } catch (err) { console.warn('bad frame', err); }
  };
  ws.onclose = (ev) => {
    if (app.ws !== ws) return;
    app.ws = null;
    // A lag close names the last id delivered: resume after it.
    const m = /last_id=(\d+)/.exec(ev.reason || '');
    if (m) app.since = Math.max(app.since || 0, Number(m[1]));
    const wait = app.retryMs;
    app.retryMs = Math.min(app.retryMs * 2, 10000);
    setConn('down', `↻ reconnecting in ${Math.round(wait / 1000)}s`);
    app.retryTimer = setTimeout(reconnect, wait);
  };
}

// After a drop: re-read everything (the server may have restarted), then follow again.
async function reconnect() {
  try {
    await loadAll();
    connect();
  } catch (err) {
    if (err instanceof AuthError) return;
    const wait = app.retryMs;
    app.retryMs = Math.min(app.retryMs * 2, 10000);
    setConn('down', `↻ server unreachable, retry in ${Math.round(wait / 1000)}s`);
    app.retryTimer = setTimeout(reconnect, wait);
  }
}

// Reads every listing. The stream then starts after the server's last event id (first time), or
// after the last event it delivered (a reconnect), so no event is missed or shown twice.
async function loadAll() {
  const metrics = await api('/api/metrics');
  const serverLast = metrics.last_event_id || 0;
  if (app.since === null || serverLast < app.since) {
    // First load, or event ids went backwards (another or a wiped server): start over.
    app.events.clear();
    app.lastId = 0;
    app.since = serverLast;
  }
  app.lastId = Math.max(app.lastId, serverLast);
  $('count-last-id').textContent = app.lastId;
  await Promise.all([loadState(), loadInstances(), loadProposals(), loadTasks(), loadHistory(), loadHealth()]);
}

async function start() {
  $('host').textContent = location.host;
  $('forget').hidden = !app.token;
  setConn('down', 'connecting…');
  try {
    await loadAll();
    document.body.dataset.ready = '1';
    connect();
  } catch (err) {
    if (err instanceof AuthError) return;
    report(err);
    app.retryTimer = setTimeout(reconnect, app.retryMs);
  }
}

// Ages tick every second; instances (heartbeats publish no event) and health every few seconds.
setInterval(() => {
  for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(el.dataset.ago);
  for (const el of document.querySelectorAll('[data-left]')) el.textContent = left(el.dataset.left);
}, 1000);
setInterval(() => {
  if (document.hidden || !app.ws) return;
  loadInstances().catch(report);
  loadHealth();
}, POLL_MS);

start();
