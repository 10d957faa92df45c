// Web UI benchmark (not a test): each main page's first contentful paint and "content ready" time
// in headless Debian chromium, against the same server `serve --listen` runs, with a store of
// 1,000 VMs (one VIF each) and a /16 pool half full (32,768 assigned addresses).
// Run: npm run bench:web   (needs /usr/bin/chromium and a built dist/ for the CLI figure; about 2 minutes)
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BrowserContext } from 'playwright-core';
import { openStore } from '../../src/core/store/open.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate } from '../../src/core/service/ip.js';
import { createTenant } from '../../src/core/service/tenants.js';
import { createUser } from '../../src/core/service/auth.js';
import { buildHttpServer, listenHttp } from '../../src/server/http.js';
import { CHROMIUM, launchChromium } from '../../test/support/browser.js';

const VMS = 1000;
const TENANTS = 10;
const ASSIGNED = 32768;
const TARGET_MS = 1000;
const GIVE_UP_MS = 120_000;
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ipvisor-bench-web-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
const say = (s: string) => process.stdout.write(s + '\n');

if (!existsSync(CHROMIUM)) {
  say(`skipped: ${CHROMIUM} is not installed (Debian package chromium)`);
  process.exit(0);
}

// ---- seed through the service layer ----
// BENCH_WEB_DB=PATH keeps the seeded store there and reuses it on the next run (seeding takes minutes).
const kept = process.env.BENCH_WEB_DB;
const reuse = kept !== undefined && existsSync(kept);
const db = kept ?? join(dir, 'ipvisor.db');
const store = await openStore(db, { create: !reuse });
const actor = 'bench';
const PASS = 'bench-pass-31337';
const t0 = performance.now();
if (!reuse) {
await createNetwork(store, { name: 'lan', bridge: 'br-bench', mode: 'routed', subnets: ['10.40.0.0/16,gateway=10.40.0.1'] }, actor);
await createPool(store, { name: 'lan16', network: 'lan', cidrs: ['10.40.0.0/16'] }, actor);
for (let t = 0; t < TENANTS; t++) await createTenant(store, { name: `t${t}`, pools: ['lan16'] }, actor);
for (let i = 0; i < VMS; i++) {
  const name = `vm${String(i).padStart(4, '0')}`;
  await createVm(store, { name, owner: `t${i % TENANTS}` }, actor);
  await addVif(store, { vm: name, network: 'lan', mac: `52:54:00:40:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` }, actor);
}
// Addresses in VM order, a run of ~33 per VIF, so the pool's first half fills up.
for (let a = 0; a < ASSIGNED; a++) {
  const vm = `vm${String(Math.floor((a * VMS) / ASSIGNED)).padStart(4, '0')}`;
  await allocate(store, { vif: `${vm}:0`, family: 4 }, actor);
}
await createUser(store, { name: 'admin', role: 'admin', password: PASS }, actor);
await createUser(store, { name: 'tenant', role: 'tenant', tenant: 't0', password: PASS }, actor);
}
say(`web UI benchmark (${new Date().toISOString()}), Node ${process.version}, load ${(await import('node:os')).loadavg()[0].toFixed(1)}`);
say(`${reuse ? 'reused' : 'seeded'} ${VMS} VMs (${VMS / TENANTS} per tenant, one VIF each), ${ASSIGNED} addresses assigned in a /16 through the service layer in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const app = await buildHttpServer({ store, enforcers: [] });
const url = await listenHttp(app, '127.0.0.1:0', { tls: false });
const browser = await launchChromium();

// Records, in the page, when each page's content first appears (ms from navigation start). A string,
// not a function: tsx's name helper (__name) would not exist inside the page.
const READY_SCRIPT = `
  window.__ready = {};
  new MutationObserver(() => {
    for (const sel of ['#login-user', '#main h1', '.amap']) if (!(sel in window.__ready) && document.querySelector(sel)) window.__ready[sel] = performance.now();
  }).observe(document, { childList: true, subtree: true });
`;

/** A browser context logged in as a user (session cookie), like a user who reloads a page. */
async function loggedIn(name: string): Promise<BrowserContext> {
  const ctx = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const res = await ctx.request.post(url + '/api/v1/session', { data: { name, password: PASS } });
  if (!res.ok()) throw new Error(`login ${name}: HTTP ${res.status()}`);
  await ctx.addInitScript({ content: READY_SCRIPT });
  return ctx;
}

interface Timing { fcp: number; ready: number; requests: number }

async function measure(ctx: BrowserContext, hash: string, readySel: string): Promise<Timing> {
  const page = await ctx.newPage();
  let requests = 0;
  page.on('request', () => requests++);
  await page.goto(`${url}/${hash}`);
  try {
    await page.waitForFunction((sel) => (window as unknown as { __ready: Record<string, number> }).__ready?.[sel] !== undefined, readySel, { timeout: GIVE_UP_MS, polling: 50 });
  } catch {
    await page.close();
    return { fcp: NaN, ready: Infinity, requests }; // shown as "> GIVE_UP_MS"
  }
  const r = await page.evaluate((sel) => {
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const failed = document.querySelector('#main [role=alert].error')?.textContent;
    return { fcp: fcp ? fcp.startTime : NaN, ready: (window as unknown as { __ready: Record<string, number> }).__ready[sel], failed };
  }, readySel);
  if (r.failed) throw new Error(`${hash}: the page shows an error: ${r.failed}`);
  await page.close();
  return { fcp: r.fcp, ready: r.ready, requests };
}

/** Median of three (a first warm-up load is discarded: chromium compiles app.js once per context). */
async function median(ctx: BrowserContext, hash: string, sel: string): Promise<Timing> {
  if ((await measure(ctx, hash, sel)).ready === Infinity) return { fcp: NaN, ready: Infinity, requests: NaN };
  const runs: Timing[] = [];
  for (let i = 0; i < 3; i++) runs.push(await measure(ctx, hash, sel));
  runs.sort((a, b) => a.ready - b.ready);
  return runs[1];
}

const anon = await browser.browser.newContext();
await anon.addInitScript({ content: READY_SCRIPT });
const admin = await loggedIn('admin');
const tenant = await loggedIn('tenant');

const rows: Array<[string, Timing]> = [];
const row = async (name: string, ctx: BrowserContext, hash: string, sel: string) => {
  const t = await median(ctx, hash, sel);
  rows.push([name, t]);
  process.stderr.write(`${name}: fcp ${t.fcp.toFixed(0)} ms, ready ${t.ready.toFixed(0)} ms, ${t.requests} requests\n`);
};
await row('login page', anon, '', '#login-user');
await row(`tenant My VMs (${VMS / TENANTS} VMs)`, tenant, '#/my-vms', '#main h1');
await row('admin overview', admin, '#/overview', '#main h1');
await row('networks', admin, '#/networks', '#main h1');
await row('pools', admin, '#/pools', '#main h1');
await row(`VMs (${VMS} VMs / VIFs)`, admin, '#/vms', '#main h1');
await row('audit log (200 newest)', admin, '#/audit', '#main h1');
await row('/16 pool map (256 /24 cells)', admin, '#/pool/lan16', '.amap');
await row('one /24 block (256 address cells)', admin, `#/pool/lan16/${encodeURIComponent('10.40.3.0/24')}`, '.amap');

say('');
say(`| page | first contentful paint | content ready (from navigation) | requests | target < ${TARGET_MS} ms |`);
say('|---|---:|---:|---:|---|');
for (const [name, t] of rows) say(`| ${name} | ${t.fcp.toFixed(0)} ms | ${t.ready === Infinity ? `> ${GIVE_UP_MS / 1000} s` : `${t.ready.toFixed(0)} ms`} | ${t.requests} | ${t.ready < TARGET_MS ? 'met' : 'NOT met'} |`);

// ---- the map's API next to the alternatives ----
const cookie = (await admin.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
async function apiMs(path: string, n = 5): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    const r = await fetch(url + '/api/v1' + path, { headers: { cookie } });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    await r.arrayBuffer();
    times.push(performance.now() - s);
  }
  return times.sort((a, b) => a - b)[Math.floor(n / 2)];
}
const mapMs = await apiMs('/pools/lan16/map');
const blockMs = await apiMs(`/pools/lan16/map?block=${encodeURIComponent('10.40.3.0/24')}`);
const poolsMs = await apiMs('/pools');
// Every address's cell would take one block request per /24: 16 of the 256 timed, times 16.
const s256 = performance.now();
for (let b = 0; b < 256; b += 16) {
  const r = await fetch(`${url}/api/v1/pools/lan16/map?block=${encodeURIComponent(`10.40.${b}.0/24`)}`, { headers: { cookie } });
  await r.arrayBuffer();
}
const allCellsMs = (performance.now() - s256) * 16;
let cliMs = NaN;
if (existsSync('dist/ipvisor.js')) {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = performance.now();
    await run(process.execPath, ['dist/ipvisor.js', '--db', db, 'pool', 'list'], { env: { ...process.env, IPVISOR_ACTOR: 'bench' } });
    times.push(performance.now() - s);
  }
  cliMs = times.sort((a, b) => a - b)[1];
}
say('');
say('| address map, /16 half full | time (median) | alternative | time |');
say('|---|---:|---|---:|');
say(`| GET /pools/lan16/map (256 /24 summaries) | ${mapMs.toFixed(0)} ms | \`ipvisor pool list\` as a process (usage only) | ${Number.isNaN(cliMs) ? 'dist/ not built' : `${cliMs.toFixed(0)} ms`} |`);
say(`| GET /pools/lan16/map?block= (one /24, 256 cells) | ${blockMs.toFixed(0)} ms | GET /pools (usage only) | ${poolsMs.toFixed(0)} ms |`);
say(`| summary page: one request, 256 cells | ${mapMs.toFixed(0)} ms | every address's cell: 256 block requests (16 timed, x16), 65,536 cells | ${allCellsMs.toFixed(0)} ms |`);

await admin.close();
await tenant.close();
await anon.close();
await browser.close();
await app.close();
await store.close();
