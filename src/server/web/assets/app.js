// ipvisor web UI: a client of /api/v1 and nothing else (it can do only what a token of the same role
// can). No framework and no build step: DOM nodes are built with el(), which sets text with
// textContent, so every value from the store is shown as text, never parsed as HTML.

const API = '/api/v1';
// A token login keeps the token in memory only (a reload asks again); a password login has the
// HttpOnly session cookie, which scripts never see.
const session = { user: null, csrf: null, bearer: null };
let liveAbort = null;
let refreshTimer = null;
let renderSeq = 0;

// ---- tiny DOM helpers ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function table(headers, rows) {
  // Each cell knows its column's name: at phone width a row is shown as a card of "name value" lines.
  for (const tr of rows) {
    [...tr.children].forEach((td, i) => { if (!td.hasAttribute('colspan') && headers[i]) td.dataset.label = headers[i]; });
  }
  return el('div', { class: 'tablewrap' }, el('table', {},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'muted' }, 'Nothing here.')))));
}

function toast(message, isError = false) {
  const box = document.getElementById('toast');
  const item = el('div', { class: isError ? 'error' : '' }, message);
  box.append(item);
  setTimeout(() => item.remove(), isError ? 8000 : 4000);
}

function setMain(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat());
}

// ---- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code;
    this.field = e.field;
  }
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (session.bearer) headers.Authorization = `Bearer ${session.bearer}`;
  else if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (res.status === 401 && !path.startsWith('/session')) {
    session.user = null;
    showLogin('Your session has ended; log in again.');
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, etag: res.headers.get('ETag') };
}

const get = async (path) => (await api('GET', path)).data;

/** Every page of a list (cursor pagination), in pages of the API's largest limit (1,000). */
async function getAll(path, max = 10000) {
  const out = [];
  let cursor = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const page = await get(`${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page.items);
    cursor = page.nextCursor ?? null;
  } while (cursor && out.length < max);
  return out;
}

async function guarded(fn, okMessage) {
  try {
    await fn();
    if (okMessage) toast(okMessage);
    await render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    toast(e.message, true);
  }
}

const enc = encodeURIComponent;
const isAdmin = () => session.user && session.user.role === 'admin';
const isStaff = () => session.user && ['admin', 'operator', 'auditor'].includes(session.user.role);
const canWrite = () => session.user && ['admin', 'operator'].includes(session.user.role);

// ---- login / logout -----------------------------------------------------------------------------

function showLogin(message) {
  stopLive();
  document.getElementById('nav').replaceChildren();
  document.getElementById('who').replaceChildren();
  const err = el('p', { class: 'error', id: 'login-error', role: 'alert' }, message || '');
  const user = el('input', { id: 'login-user', name: 'username', autocomplete: 'username' });
  const pass = el('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password' });
  const token = el('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off' });
  const submit = async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    try {
      if (token.value) {
        session.bearer = token.value.trim();
        adoptSession(await get('/me'));
      } else {
        adoptSession((await api('POST', '/session', { name: user.value, password: pass.value })).data);
      }
      location.hash = landing();
      await render();
    } catch (e) {
      session.bearer = null;
      err.textContent = e instanceof ApiError && e.status === 401 ? 'Wrong user name, password or token.' : e.message;
    }
  };
  setMain(el('form', { class: 'panel login', onsubmit: submit, 'aria-labelledby': 'login-title' },
    el('h1', { id: 'login-title' }, 'Log in to ipvisor'),
    el('label', { for: 'login-user' }, 'User name'), user,
    el('label', { for: 'login-pass' }, 'Password'), pass,
    el('p', { class: 'muted' }, 'or'),
    el('label', { for: 'login-token' }, 'API token'), token,
    el('p', {}, el('button', { type: 'submit' }, 'Log in')),
    err));
}

// The login form posts JSON, which a cross-site form cannot send, and the session cookie is
// SameSite=Strict; every later change carries the session's CSRF token as X-CSRF-Token.
function adoptSession(s) {
  session.user = s.principal;
  session.csrf = s.csrfToken ?? session.csrf;
}

async function logout() {
  if (!session.bearer) {
    try { await api('DELETE', '/session'); } catch { /* already gone */ }
  }
  session.user = null;
  session.csrf = null;
  session.bearer = null;
  location.hash = '#/';
  showLogin('Logged out.');
}

function landing() {
  return session.user.role === 'tenant' ? '#/my-vms' : '#/overview';
}

// ---- navigation and live updates ----------------------------------------------------------------

const PAGES = {
  'my-vms': { title: 'My VMs', who: () => session.user.role === 'tenant', view: myVms },
  'my-events': { title: 'My events', who: () => session.user.role === 'tenant', view: auditLog },
  overview: { title: 'Overview', who: isStaff, view: overview },
  networks: { title: 'Networks', who: isStaff, view: networks },
  pools: { title: 'Pools', who: isStaff, view: pools },
  pool: { title: 'Pool', who: isStaff, view: poolPage, hidden: true },
  vms: { title: 'VMs', who: isStaff, view: vms },
  hosts: { title: 'Hosts', who: isStaff, view: hosts },
  host: { title: 'Host', who: isStaff, view: hostPage, hidden: true },
  audit: { title: 'Audit log', who: isStaff, view: auditLog },
  tenants: { title: 'Tenants', who: isAdmin, view: tenants },
  tokens: { title: 'Tokens', who: isAdmin, view: tokens },
};

function route() {
  const [page, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  return { page: page || '', args: rest.map(decodeURIComponent) };
}

function drawNav(current) {
  const links = Object.entries(PAGES).filter(([, p]) => !p.hidden && p.who()).map(([id, p]) =>
    el('a', { href: `#/${id}`, 'aria-current': id === current ? 'page' : null }, p.title));
  document.getElementById('nav').replaceChildren(...links);
  const u = session.user;
  document.getElementById('who').replaceChildren(
    el('span', {}, `${u.name} (${u.role}${u.tenant ? `, ${u.tenant}` : ''})`),
    el('button', { class: 'secondary', type: 'button', onclick: logout }, 'Log out'));
}

/** The event stream (server-sent events) read with fetch, so a token login can send its
 * Authorization header (EventSource cannot); it resumes after the last event id it saw. */
function startLive() {
  if (liveAbort) return;
  const ctrl = new AbortController();
  liveAbort = ctrl;
  let lastId = null;
  const connect = async () => {
    while (!ctrl.signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (session.bearer) headers.Authorization = `Bearer ${session.bearer}`;
        if (lastId) headers['Last-Event-ID'] = lastId;
        const res = await fetch(`${API}/events/stream`, { headers, credentials: 'same-origin', signal: ctrl.signal });
        if (!res.ok || !res.body) throw new Error(`stream: HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: ?(.*)$/m.exec(block);
            if (id) lastId = id[1];
            if (/^data:/m.test(block)) scheduleRefresh();
          }
        }
      } catch { /* reconnect below */ }
      if (!ctrl.signal.aborted) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  connect();
}

function stopLive() {
  if (liveAbort) liveAbort.abort();
  liveAbort = null;
}

/** A change elsewhere (CLI, API, hook) re-renders the open page, without losing a form being typed. */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const active = document.activeElement;
    if (active && ['INPUT', 'SELECT', 'TEXTAREA'].includes(active.tagName) && active.value) return scheduleRefresh();
    render({ keepFocus: true });
  }, 250);
}

async function render(opts = {}) {
  if (!session.user) {
    try {
      adoptSession(await get('/me'));
    } catch {
      return showLogin();
    }
  }
  let { page, args } = route();
  if (!PAGES[page] || !PAGES[page].who()) {
    location.hash = landing();
    ({ page, args } = route());
  }
  drawNav(page);
  startLive();
  const focusId = opts.keepFocus && document.activeElement ? document.activeElement.id : null;
  const seq = ++renderSeq;
  try {
    const content = await PAGES[page].view(...args);
    if (seq !== renderSeq) return; // a newer render (navigation, live change) superseded this one
    setMain(content);
    document.title = `${PAGES[page].title} — ipvisor`;
    if (focusId && document.getElementById(focusId)) document.getElementById(focusId).focus();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    setMain(el('h1', {}, PAGES[page].title), el('p', { class: 'error', role: 'alert' }, e instanceof ApiError && e.status === 404 ? 'Not found.' : e.message));
  }
}

// ---- shared pieces ------------------------------------------------------------------------------

function lockingTag(v) {
  return el('span', { class: `tag ${v.effectiveLocking}` }, v.effectiveLocking);
}

/** Why a VIF has the locking mode it has (DESIGN.md's one rule). */
function lockingWhy(v) {
  if (v.lockingReason) return v.lockingReason;
  if (v.locking !== 'network_default') return 'set on the VIF';
  return v.addresses.length ? 'network default; locked because it holds addresses' : 'network default';
}

/** VIFs by VM name, from one list of every VIF (one request, not one per VM). */
function vifsByVm(vifList) {
  const out = new Map();
  for (const v of vifList) {
    const list = out.get(v.vm);
    if (list) list.push(v);
    else out.set(v.vm, [v]);
  }
  return out;
}

/** The tenant's usage as bars: per pool, then per family; a missing quota is unlimited. */
function quotaRows(u) {
  const rows = u.pools.map((p) => ({ scope: `pool ${p.pool}`, used: p.used, limit: p.quota }));
  if (u.family4.quota !== null || u.family4.used) rows.push({ scope: 'IPv4 addresses', used: u.family4.used, limit: u.family4.quota });
  if (u.family6.quota !== null || u.family6.used) rows.push({ scope: 'IPv6 addresses', used: u.family6.used, limit: u.family6.quota });
  return rows;
}

function quotaBars(usage) {
  if (!usage || !usage.length) return el('p', { class: 'muted' }, 'No quota.');
  return el('div', { class: 'grid2' }, usage.map((q) => {
    const pct = q.limit ? Math.min(100, Math.round((q.used / q.limit) * 100)) : 0;
    return el('div', {},
      el('div', {}, `${q.scope}: ${q.used} of ${q.limit ?? '∞'}`),
      el('div', { class: `bar${q.limit && q.used >= q.limit ? ' full' : ''}`, role: 'meter', 'aria-label': `quota ${q.scope}`, 'aria-valuemin': 0, 'aria-valuemax': q.limit ?? 0, 'aria-valuenow': q.used },
        el('span', { style: null, 'data-pct': pct })));
  }));
}

// CSP forbids inline styles set from markup, but style properties set through the DOM are allowed.
function applyBarWidths(root) {
  root.querySelectorAll('.bar > span[data-pct]').forEach((s) => { s.style.width = `${s.dataset.pct}%`; });
  return root;
}

// ---- tenant: My VMs -----------------------------------------------------------------------------

async function myVms() {
  const [vmsList, vifList, poolsList, me] = await Promise.all([getAll('/vms'), getAll('/vifs'), getAll('/pools'), get('/me')]);
  const vifsOf = vifsByVm(vifList);
  // The lowest free addresses of each pool open to the tenant, for "pick a specific one".
  const free = Object.fromEntries(await Promise.all(poolsList.map(async (p) => [p.name, (await get(`/pools/${enc(p.name)}/free?limit=20`)).items])));
  const page = el('div', {}, el('h1', {}, 'My VMs'));
  if (me.tenant) page.append(el('section', { class: 'panel', 'aria-labelledby': 'q-h' }, el('h2', { id: 'q-h' }, 'Quota'), quotaBars(quotaRows(me.tenant.usage))));
  if (!vmsList.length) page.append(el('p', { class: 'muted' }, 'You have no VMs yet.'));
  for (const vm of vmsList) {
    const detail = { vifs: vifsOf.get(vm.name) ?? [] };
    page.append(el('section', { class: 'panel vm', 'data-vm': vm.name, 'aria-label': `VM ${vm.name}` },
      el('h2', {}, vm.name),
      table(['VIF', 'MAC', 'Network', 'Locking', 'Allowed IPs'], detail.vifs.map((v) => vifRow(vm, v, poolsList, free)))));
  }
  return applyBarWidths(page);
}

function vifRow(vm, v, poolsList, free) {
  const label = `${vm.name}:${v.device}`;
  const usable = poolsList.filter((p) => p.network === v.network);
  const ips = el('ul', { class: 'ips' }, v.addresses.map((a) =>
    el('li', {}, el('code', {}, a.address), el('span', { class: 'muted' }, a.kind),
      el('button', { class: 'danger icon', type: 'button', 'aria-label': `remove ${a.address} from ${label}`,
        onclick: () => guarded(() => api('DELETE', `/addresses/${enc(a.address)}${session.user.role === 'tenant' ? '' : `?network=${enc(v.network)}`}`), `${a.address} released`) }, '−'))));
  const poolSel = el('select', { id: `pool-${label}`, 'aria-label': `pool for ${label}` }, usable.map((p) => el('option', { value: p.name }, `${p.name} (IPv${p.family})`)));
  const pick = el('select', { id: `pick-${label}`, 'aria-label': `address for ${label}` }, el('option', { value: '' }, 'next free'));
  const fillFree = (pool) => pick.replaceChildren(el('option', { value: '' }, 'next free'), ...(free[pool] || []).map((a) => el('option', { value: a }, a)));
  fillFree(usable[0]?.name);
  poolSel.addEventListener('change', () => fillFree(poolSel.value));
  const add = el('button', { type: 'submit', class: 'icon', 'aria-label': `add an allowed IP to ${label}` }, '+');
  const form = el('form', { class: 'inline', onsubmit: (ev) => {
    ev.preventDefault();
    const body = { vif: label, pool: poolSel.value };
    if (pick.value) body.address = pick.value;
    return guarded(() => api('POST', '/addresses', body, { 'Idempotency-Key': crypto.randomUUID() }), 'address added');
  } }, poolSel, pick, add);
  return el('tr', { 'data-vif': label },
    el('td', {}, label),
    el('td', {}, el('code', {}, v.mac)),
    el('td', {}, v.network),
    el('td', {}, lockingTag(v), el('div', { class: 'muted' }, lockingWhy(v))),
    el('td', {}, ips, usable.length ? form : el('span', { class: 'muted' }, 'no pool available')));
}

// ---- admin / operator / auditor -----------------------------------------------------------------

async function overview() {
  const [nets, poolList, vmList, hostList] = await Promise.all([getAll('/networks'), getAll('/pools'), getAll('/vms'), getAll('/hosts').catch(() => [])]);
  return el('div', {}, el('h1', {}, 'Overview'),
    el('div', { class: 'grid2' },
      el('div', { class: 'panel' }, el('h2', {}, 'Networks'), el('p', {}, String(nets.length)), el('a', { href: '#/networks' }, 'Show networks')),
      el('div', { class: 'panel' }, el('h2', {}, 'Pools'), el('p', {}, String(poolList.length)), el('a', { href: '#/pools' }, 'Show pools')),
      el('div', { class: 'panel' }, el('h2', {}, 'VMs'), el('p', {}, String(vmList.length)), el('a', { href: '#/vms' }, 'Show VMs')),
      el('div', { class: 'panel' }, el('h2', {}, 'Hosts'), el('p', {}, String(hostList.length)), el('a', { href: '#/hosts' }, 'Show hosts'))));
}

const LOCKINGS = ['unlocked', 'locked', 'disabled'];

async function networks() {
  const list = await getAll('/networks');
  return el('div', {}, el('h1', {}, 'Networks'), table(['Name', 'Driver / mode', 'Bridge', 'Subnets', 'Default locking'], list.map((n) => {
    const sel = el('select', { id: `netlock-${n.name}`, 'aria-label': `default locking of ${n.name}`, disabled: !canWrite() },
      LOCKINGS.map((m) => el('option', { value: m, selected: m === n.defaultLocking }, m)));
    sel.addEventListener('change', () => guarded(() => api('PATCH', `/networks/${enc(n.name)}`, { defaultLocking: sel.value }), `${n.name}: default locking ${sel.value}`));
    return el('tr', { 'data-network': n.name },
      el('td', {}, n.name), el('td', {}, `${n.driver} / ${n.mode}`), el('td', {}, n.bridge ?? '—'),
      el('td', {}, n.subnets.map((s) => el('div', {}, el('code', {}, s.cidr), s.gateway ? ` gw ${s.gateway}` : ''))),
      el('td', {}, sel));
  })));
}

async function pools() {
  const list = await getAll('/pools');
  return el('div', {}, el('h1', {}, 'Pools'), table(['Pool', 'Network', 'Family / purpose', 'Used', 'Free', 'Total'], list.map((p) =>
    el('tr', {}, el('td', {}, el('a', { href: `#/pool/${enc(p.name)}` }, p.name)), el('td', {}, p.network),
      el('td', {}, `IPv${p.family} / ${p.purpose}`), el('td', {}, usedOf(p.usage)), el('td', {}, p.usage.free), el('td', {}, p.usage.total)))));
}

function usedOf(u) {
  return (BigInt(u.total) - BigInt(u.free)).toString();
}

const STATE_LETTER = { free: '', assigned: 'A', reserved: 'R', held: 'H', excluded: 'X', gateway: 'G', network: 'N', broadcast: 'B', 'host-address': 'S', outside: '' };
const STATE_NAME = { free: 'free', assigned: 'assigned', reserved: 'reserved', held: 'held (recently released)', excluded: 'excluded', gateway: 'gateway', network: 'network address', broadcast: 'broadcast', 'host-address': 'host address', outside: 'outside the pool' };

function legend(counts) {
  return el('ul', { class: 'legend', 'aria-label': 'legend' }, Object.keys(STATE_NAME).map((s) =>
    el('li', {}, el('span', { class: 'c', 'data-state': s }, STATE_LETTER[s] || '·'), STATE_NAME[s], counts ? ` (${counts[s] ?? 0})` : '')));
}

/** One /24: 256 cells, each with a colour, a letter, and its holder on hover or focus. */
function blockGrid(block, cells, detail) {
  const grid = el('div', { class: 'amap', role: 'grid', 'aria-label': `addresses of ${block}`, 'data-block': block });
  for (const c of cells) {
    const text = `${c.address}: ${STATE_NAME[c.state]}${c.holder ? ` — ${c.holder}` : ''}`;
    const cell = el('span', { class: 'c', role: 'gridcell', tabindex: c.state === 'outside' ? -1 : 0, 'data-state': c.state, 'data-address': c.address, title: text, 'aria-label': text }, STATE_LETTER[c.state]);
    const show = () => { detail.textContent = text; };
    cell.addEventListener('mouseenter', show);
    cell.addEventListener('focus', show);
    grid.append(cell);
  }
  return grid;
}

async function poolPage(name, block) {
  const map = await get(`/pools/${enc(name)}/map${block ? `?block=${enc(block)}` : ''}`);
  const detail = el('div', { class: 'celldetail', 'aria-live': 'polite' });
  const page = el('div', {}, el('h1', {}, `Pool ${map.pool}`),
    el('p', {}, `IPv${map.family}: ${usedOf(map.usage)} used of ${map.usage.total} (assigned ${map.usage.assigned}, reserved ${map.usage.reserved}, routed ${map.usage.routed}, held ${map.usage.held}, free ${map.usage.free})`));
  if (map.family === 6) {
    page.append(el('h2', {}, 'Largest free blocks'), el('ul', {}, (map.largestFree || []).map((b) => el('li', {}, el('code', {}, b)))));
    return page;
  }
  if (map.cells) {
    const counts = {};
    for (const c of map.cells) counts[c.state] = (counts[c.state] ?? 0) + 1;
    page.append(el('p', {}, el('a', { href: `#/pool/${enc(name)}` }, `← all blocks of ${map.pool}`)), el('h2', {}, block), blockGrid(block, map.cells, detail), detail, legend(counts));
    return page;
  }
  // Small pools (up to four /24s) show every address at once; larger ones one cell per /24 first.
  if (map.blocks.length <= 4) {
    const counts = {};
    const blocks = el('div', { class: 'blocks' });
    const all = await Promise.all(map.blocks.map((b) => get(`/pools/${enc(name)}/map?block=${enc(b.block)}`)));
    map.blocks.forEach((b, i) => {
      for (const c of all[i].cells) counts[c.state] = (counts[c.state] ?? 0) + 1;
      blocks.append(el('div', {}, el('h2', {}, b.block), blockGrid(b.block, all[i].cells, detail)));
    });
    page.append(blocks, detail, legend(counts));
    return page;
  }
  const grid = el('div', { class: 'amap', role: 'grid', 'aria-label': `/24 blocks of ${map.pool}` });
  for (const b of map.blocks) {
    const pct = b.inPool ? Math.round((b.used / b.inPool) * 100) : 0;
    const text = `${b.block}: ${b.used} of ${b.inPool} used (${pct} %)`;
    const btn = el('button', { class: 'b', type: 'button', 'data-block': b.block, 'data-fill': pct, title: text, 'aria-label': text,
      onclick: () => { location.hash = `#/pool/${enc(name)}/${enc(b.block)}`; } }, pct >= 100 ? 'F' : String(Math.floor(pct / 10)));
    // fill as a shade: lighter is emptier (the digit is the tenth of the fill, so colour is not the only signal)
    btn.style.background = `hsl(210 60% ${95 - pct * 0.55}%)`;
    if (pct > 55) btn.style.color = '#fff';
    btn.addEventListener('focus', () => { detail.textContent = text; });
    btn.addEventListener('mouseenter', () => { detail.textContent = text; });
    grid.append(btn);
  }
  page.append(el('p', { class: 'muted' }, 'One cell per /24: the digit is the fill in tenths (F: full). Open a /24 to see its addresses.'), grid, detail);
  return page;
}

async function vms() {
  const [list, vifList] = await Promise.all([getAll('/vms'), getAll('/vifs')]);
  const vifsOf = vifsByVm(vifList);
  const rows = [];
  for (const vm of list) {
    const detail = { vifs: vifsOf.get(vm.name) ?? [] };
    for (const v of detail.vifs.length ? detail.vifs : [null]) {
      if (!v) {
        rows.push(el('tr', {}, el('td', {}, vm.name), el('td', {}, vm.owner ?? '—'), el('td', { colspan: 4, class: 'muted' }, 'no VIFs')));
        continue;
      }
      const label = `${vm.name}:${v.device}`;
      const sel = el('select', { id: `viflock-${label}`, 'aria-label': `locking of ${label}`, disabled: !canWrite() },
        ['network_default', ...LOCKINGS].map((m) => el('option', { value: m, selected: m === v.locking }, m)));
      sel.addEventListener('change', () => guarded(() => api('PATCH', `/vifs/${enc(label)}`, { locking: sel.value }), `${label}: locking ${sel.value}`));
      rows.push(el('tr', { 'data-vif': label }, el('td', {}, label), el('td', {}, vm.owner ?? '—'), el('td', {}, el('code', {}, v.mac)),
        el('td', {}, v.network), el('td', {}, sel, ' ', lockingTag(v), el('div', { class: 'muted' }, lockingWhy(v))),
        el('td', {}, addressList(v.addresses))));
    }
  }
  return el('div', {}, el('h1', {}, 'VMs and VIFs'), table(['VIF', 'Owner', 'MAC', 'Network', 'Locking', 'Addresses'], rows));
}

/** A VIF's addresses, compact: the first few inline, the rest behind "N more" (a VIF may hold hundreds). */
function addressList(addresses) {
  const FIRST = 8;
  const item = (a) => el('code', {}, a.address);
  const list = el('div', { class: 'addrs' }, addresses.slice(0, FIRST).map(item));
  if (addresses.length <= FIRST) return list;
  const more = el('details', {}, el('summary', {}, `${addresses.length - FIRST} more`));
  more.addEventListener('toggle', () => {
    if (more.open && more.children.length === 1) more.append(el('div', { class: 'addrs' }, addresses.slice(FIRST).map(item)));
  }, { once: true });
  return el('div', {}, list, more);
}

/** The + / - lines of a plan, as `ipvisor plan` prints them. */
function planLines(plan) {
  return plan.changes.map((c) => `${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ''}`);
}

function planView(plan) {
  const lines = planLines(plan);
  return el('div', {},
    lines.length
      ? el('pre', { class: 'diff', 'aria-label': 'plan' }, lines.map((l) => el('span', { class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : '' }, `${l}\n`)))
      : el('p', { class: 'muted' }, 'No changes: the host is as the store says.'),
    (plan.warnings || []).map((w) => el('p', { class: 'error' }, `warning: ${w}`)));
}

function hostState(a) {
  if (!a) return '—';
  if (a.refused) return `refused: ${a.refused}`;
  if (!a.ok) return `error: ${a.error ?? ''}`;
  return a.drift.length ? `${a.drift.length} pending` : 'in sync';
}

async function hosts() {
  // Agents' hosts as they last reported; and the hosts this server (serve) enforces itself.
  const [list, plan] = await Promise.all([getAll('/hosts'), get('/plan')]);
  return el('div', {}, el('h1', {}, 'Hosts'),
    table(['Host', 'Last seen', 'Applied revision', 'State', 'Agent'], list.map((h) =>
      el('tr', { 'data-host': h.name }, el('td', {}, el('a', { href: `#/host/${enc(h.name)}` }, h.name)), el('td', { class: 'mono' }, h.lastSeen ?? 'never'),
        el('td', {}, h.applied ? String(h.applied.revision) : '—'), el('td', {}, hostState(h.applied)), el('td', {}, h.agentVersion ?? '—')))),
    el('h2', {}, 'Plan of the host this server enforces itself'), planView(plan));
}

/** One agent host: the + / - lines still pending after its last run (its plan), warnings, errors. */
async function hostPage(name) {
  const h = await get(`/hosts/${enc(name)}`);
  const a = h.applied;
  const drift = a ? a.drift : [];
  return el('div', {}, el('h1', {}, `Host ${h.name}`),
    el('p', {}, `last seen ${h.lastSeen ?? 'never'}; agent ${h.agentVersion ?? '—'}; ${a ? `revision ${a.revision} applied at ${a.at} (${a.changes} change(s) in the last run)` : 'no report yet'}`),
    a && (a.refused || !a.ok) ? el('p', { class: 'error', role: 'alert' }, hostState(a)) : null,
    el('h2', {}, 'Plan (pending on the host)'),
    drift.length
      ? el('pre', { class: 'diff', 'aria-label': 'plan' }, drift.map((l) => el('span', { class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : '' }, `${l}\n`)))
      : el('p', { class: 'muted' }, a ? 'No changes: the host is as its desired state says.' : 'Unknown until the agent reports.'),
    a && a.warnings.length ? el('div', {}, el('h2', {}, 'Warnings'), a.warnings.map((w) => el('p', {}, w))) : null);
}

async function auditLog() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const object = el('input', { id: 'audit-object', name: 'object', value: q.get('object') || '' });
  const actor = el('input', { id: 'audit-actor', name: 'actor', value: q.get('actor') || '' });
  const since = el('input', { id: 'audit-since', name: 'since', placeholder: '1h, 2d or an ISO time', value: q.get('since') || '' });
  const params = new URLSearchParams();
  for (const [k, v] of [['object', q.get('object')], ['actor', q.get('actor')], ['since', q.get('since')]]) if (v) params.set(k, v);
  params.set('limit', '200');
  params.set('newest', 'true');
  const list = (await get(`/events?${params}`)).items.reverse(); // newest first
  const { page } = route();
  const form = el('form', { class: 'inline', onsubmit: (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (object.value) p.set('object', object.value);
    if (actor.value) p.set('actor', actor.value);
    if (since.value) p.set('since', since.value);
    location.hash = `#/${page}?${p}`;
  } }, el('div', {}, el('label', { for: 'audit-object' }, 'Object'), object), el('div', {}, el('label', { for: 'audit-actor' }, 'Actor'), actor),
    el('div', {}, el('label', { for: 'audit-since' }, 'Since'), since), el('button', { type: 'submit' }, 'Filter'));
  return el('div', {}, el('h1', {}, page === 'my-events' ? 'My events' : 'Audit log'), form,
    table(['Time', 'Actor', 'Action', 'Object', 'What changed'], list.map((e) =>
      el('tr', {}, el('td', { class: 'mono' }, e.time), el('td', {}, e.actor), el('td', {}, e.action), el('td', {}, `${e.objectKind} ${e.objectName ?? ''}`),
        el('td', {}, changesOf(e).map((c) => el('div', {}, c)))))));
}

/** What an event changed, field by field ("locking: locked -> unlocked"). */
function changesOf(e) {
  const before = e.before && typeof e.before === 'object' ? e.before : {};
  const after = e.after && typeof e.after === 'object' ? e.after : {};
  const show = (v) => (v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
  const out = [];
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (['createdAt', 'updatedAt', 'uuid'].includes(k)) continue;
    if (JSON.stringify(before[k]) === JSON.stringify(after[k])) continue;
    if (!e.before) out.push(`${k}: ${show(after[k])}`);
    else out.push(`${k}: ${show(before[k])} -> ${show(after[k])}`);
  }
  return out.slice(0, 12);
}

async function tenants() {
  const list = await getAll('/tenants');
  const name = el('input', { id: 'tenant-name', name: 'name', required: true });
  const poolsIn = el('input', { id: 'tenant-pools', name: 'pools', placeholder: 'pool1,pool2' });
  const quota = el('input', { id: 'tenant-quota', name: 'quota', placeholder: 'pool1=4,family6=8' });
  const form = el('form', { class: 'inline', onsubmit: (ev) => {
    ev.preventDefault();
    const body = { name: name.value, pools: poolsIn.value ? poolsIn.value.split(',').map((s) => s.trim()) : [], quota: quota.value ? quota.value.split(',').map((s) => s.trim()) : [] };
    return guarded(() => api('POST', '/tenants', body), `tenant ${name.value} created`);
  } }, el('div', {}, el('label', { for: 'tenant-name' }, 'Name'), name), el('div', {}, el('label', { for: 'tenant-pools' }, 'Pools'), poolsIn),
    el('div', {}, el('label', { for: 'tenant-quota' }, 'Quota'), quota), el('button', { type: 'submit' }, 'Create tenant'));
  return el('div', {}, el('h1', {}, 'Tenants'), table(['Tenant', 'Pools', 'Quota', 'VMs'], list.map((t) =>
    el('tr', {}, el('td', {}, t.name), el('td', {}, (t.pools || []).join(', ') || '—'), el('td', {}, (t.quota || []).map((q) => el('div', {}, typeof q === 'string' ? q : JSON.stringify(q)))),
      el('td', {}, t.vms ?? '—')))), el('h2', {}, 'New tenant'), form);
}

async function tokens() {
  const list = await getAll('/tokens');
  return el('div', {}, el('h1', {}, 'Tokens'), table(['Name', 'Role', 'Tenant', 'Expires', 'Last used', ''], list.map((t) =>
    el('tr', {}, el('td', {}, t.name), el('td', {}, t.role), el('td', {}, t.tenant ?? '—'), el('td', {}, t.expiresAt ?? 'never'), el('td', {}, t.lastUsedAt ?? '—'),
      el('td', {}, el('button', { class: 'danger', type: 'button', 'aria-label': `revoke token ${t.name}`, onclick: () => guarded(() => api('POST', `/tokens/${enc(t.name)}/revoke`), `token ${t.name} revoked`) }, 'Revoke'))))));
}

window.addEventListener('hashchange', () => render());
render();
