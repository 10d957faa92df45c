// The web UI in a real browser: Debian's chromium driven by playwright-core against the server
// (the same buildHttpServer as `serve --listen`) on loopback, with a store the test fills. Every
// assertion about what a user sees is checked against the store (through the CLI) as well.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { createNetwork, addHostAddress } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate, release, reserve } from '../../src/core/service/ip.js';
import { createTenant } from '../../src/core/service/tenants.js';
import { createUser } from '../../src/core/service/auth.js';
import { addHost, recordAgentReport } from '../../src/server/hosts.js';
import { buildHttpServer, listenHttp, type HttpServer } from '../../src/server/http.js';
import { CONTENT_SECURITY_POLICY, assetsDir } from '../../src/server/web/plugin.js';
import { browserSkipReason, launchChromium, type TestBrowser } from '../support/browser.js';
import { cli, tempDb } from '../support/cli.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = browserSkipReason();
const XSS = '<img src=x onerror=alert(1)>';
const PASSWORDS = { alice: 'alice-test-pw-4821', bob: 'bob-admin-pw-9931', carol: 'carol-test-pw-1177' };
const SHOTS = process.env.IPVISOR_UPDATE_SCREENSHOTS === '1' ? new URL('../../docs/screenshots/', import.meta.url).pathname : null;

describe('web UI in chromium', { skip, timeout: 240_000 }, () => {
  let tmp: ReturnType<typeof tempDb>;
  let store: Store;
  let app: HttpServer;
  let url: string;
  let browser: TestBrowser;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  let db1Uuid = '';
  // globex's VM as it could show up: its name as a value or a VIF label, its MAC, its UUID (a bare
  // /db1/ would also match inside some random UUID)
  const foreign = () => new RegExp(`"db1"|\\bdb1:|52:54:00:10:00:02|${db1Uuid}`);
  // What the test put into the /22 pool, per state (checked against the map's cells).
  const expected: Record<string, number> = {};

  before(async () => {
    tmp = tempDb();
    store = await openStore(tmp.db, { create: true });
    const actor = 'test';
    await createNetwork(store, { name: 'lan', bridge: 'br-web', mode: 'routed', subnets: ['10.30.0.0/22,gateway=10.30.0.1'], defaultLocking: 'unlocked' }, actor);
    await addHostAddress(store, 'lan', '10.30.0.2/22', actor);
    await createPool(store, { name: 'lan4', network: 'lan', cidrs: ['10.30.0.0/22'], exclude: ['10.30.1.0/29', '10.30.2.200'], hold: 3600 }, actor);
    await createTenant(store, { name: 'acme', pools: ['lan4'], quota: ['lan4=40'] }, actor);
    await createTenant(store, { name: 'globex', pools: ['lan4'] }, actor);
    await createVm(store, { name: 'web1', owner: 'acme' }, actor);
    db1Uuid = (await createVm(store, { name: 'db1', owner: 'globex' }, actor)).uuid;
    await createVm(store, { name: XSS, owner: 'acme' }, actor);
    await addVif(store, { vm: 'web1', network: 'lan', mac: '52:54:00:10:00:01' }, actor);
    await addVif(store, { vm: 'db1', network: 'lan', mac: '52:54:00:10:00:02' }, actor);
    await addVif(store, { vm: XSS, network: 'lan', mac: '52:54:00:10:00:03' }, actor);
    // db1 (globex) holds 30 addresses; web1 (acme) 3; 4 reservations; 2 released (held)
    for (let i = 0; i < 30; i++) await allocate(store, { vif: 'db1:0', family: 4 }, actor);
    for (let i = 0; i < 3; i++) await allocate(store, { vif: 'web1:0', family: 4 }, actor);
    for (const a of ['10.30.3.10', '10.30.3.11', '10.30.3.12', '10.30.3.13']) await reserve(store, { address: a, pool: 'lan4', note: 'printer' }, actor);
    const gone = await allocate(store, { vif: 'db1:0', family: 4 }, actor);
    await release(store, { address: gone.assignment.address }, actor);
    const gone2 = await allocate(store, { vif: 'db1:0', family: 4 }, actor);
    await release(store, { address: gone2.assignment.address }, actor);
    Object.assign(expected, { assigned: 33, reserved: 4, held: 2, excluded: 9, gateway: 1, network: 1, broadcast: 1, 'host-address': 1 });
    expected.free = 1024 - Object.values(expected).reduce((a, b) => a + b, 0);
    await createUser(store, { name: 'alice', role: 'tenant', tenant: 'acme', password: PASSWORDS.alice }, actor);
    await createUser(store, { name: 'carol', role: 'tenant', tenant: 'globex', password: PASSWORDS.carol }, actor);
    await createUser(store, { name: 'bob', role: 'admin', password: PASSWORDS.bob }, actor);
    await addHost(store, 'hv-web', actor);
    await recordAgentReport(store, 'hv-web', { revision: 7, digest: 'd', storeIdentity: 'x', ok: true, changes: 2, drift: ['+ nft-element bridge vif_mac "vnet9" . 52:54:00:10:00:09'], warnings: [], agentVersion: '0.1.0', at: new Date().toISOString() });
    app = await buildHttpServer({ store, enforcers: [] });
    url = await listenHttp(app, '127.0.0.1:0', { tls: false });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await store?.close();
    tmp?.cleanup();
  });

  async function login(name: keyof typeof PASSWORDS, viewport = { width: 1280, height: 900 }): Promise<Page> {
    const ctx = await browser.browser.newContext({ viewport });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', async (d) => {
      dialogs.push(d.message());
      await d.dismiss();
    });
    await page.goto(url + '/');
    await page.fill('#login-user', name);
    await page.fill('#login-pass', PASSWORDS[name]);
    await page.click('button[type=submit]');
    await page.waitForSelector('#who button');
    return page;
  }

  async function shot(page: Page, name: string): Promise<void> {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
  }

  test('/ without a session shows the login form; a wrong password says so; every UI response carries the CSP', async () => {
    const ctx = await browser.browser.newContext();
    const page = await ctx.newPage();
    const res = await page.goto(url + '/');
    assert.equal(res!.headers()['content-security-policy'], CONTENT_SECURITY_POLICY);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval/);
    await page.waitForSelector('#login-user');
    assert.equal(await page.getAttribute('label[for=login-user]', 'for'), 'login-user');
    await shot(page, 'login');
    await page.fill('#login-user', 'alice');
    await page.fill('#login-pass', 'wrong');
    await page.click('button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error')?.textContent?.includes('Wrong'));
    for (const path of ['/assets/app.js', '/assets/app.css', '/no-such-page', '/api/v1/vms', '/assets/..%2fplugin.ts']) {
      const r = await fetch(url + path);
      assert.equal(r.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
      if (path.startsWith('/assets/app')) {
        assert.match(r.headers.get('cache-control') ?? '', /max-age=\d+/, path);
        const again = await fetch(url + path, { headers: { 'if-none-match': r.headers.get('etag')! } });
        assert.equal(again.status, 304, path);
      } else assert.ok([401, 404].includes(r.status), `${path}: ${r.status}`);
    }
    // no inline script anywhere in the shell
    const shell = await (await fetch(url + '/')).text();
    assert.doesNotMatch(shell, /<script(?![^>]*\bsrc=)[^>]*>/);
    await ctx.close();
  });

  test('a tenant adds an allowed IP with "+", sees it, the store and audit log have it; removes it again', async () => {
    const page = await login('alice');
    await page.waitForSelector('section.vm[data-vm="web1"]');
    assert.match(await page.textContent('h1') ?? '', /My VMs/);
    await shot(page, 'tenant-my-vms');
    const row = page.locator('tr[data-vif="web1:0"]');
    const before = await row.locator('ul.ips li').count();
    assert.equal(before, 3);
    // pick a specific free address from the list
    await row.locator('select[aria-label="address for web1:0"]').focus();
    await page.waitForFunction(() => (document.querySelector('select[aria-label="address for web1:0"]') as HTMLSelectElement).options.length > 1);
    const chosen = await row.locator('select[aria-label="address for web1:0"] option').nth(2).getAttribute('value');
    await row.locator('select[aria-label="address for web1:0"]').selectOption(chosen!);
    await row.locator('button[aria-label="add an allowed IP to web1:0"]').click();
    await page.waitForFunction((a) => [...document.querySelectorAll('tr[data-vif="web1:0"] ul.ips code')].some((c) => c.textContent === a), chosen);
    const shown = await cli(tmp.db, 'vm', 'show', 'web1', '--json');
    assert.ok(JSON.stringify(shown.json).includes(chosen!), 'the store has the address');
    const events = await cli(tmp.db, 'events', '--object', 'web1', '--json');
    assert.ok((events.json as Array<{ actor: string; objectName: string }>).some((e) => e.actor === 'user:alice' && e.objectName === chosen), 'audit: actor user:alice');
    // next free with "+": one more address
    await row.locator('select[aria-label="address for web1:0"]').selectOption('');
    await row.locator('button[aria-label="add an allowed IP to web1:0"]').click();
    await page.waitForFunction(() => document.querySelectorAll('tr[data-vif="web1:0"] ul.ips li').length === 5);
    // remove the chosen one
    await page.click(`button[aria-label="remove ${chosen} from web1:0"]`);
    await page.waitForFunction((a) => ![...document.querySelectorAll('tr[data-vif="web1:0"] ul.ips code')].some((c) => c.textContent === a), chosen);
    const after = await cli(tmp.db, 'vm', 'show', 'web1', '--json');
    assert.ok(!JSON.stringify(after.json).includes(`"${chosen}"`), 'the store no longer has it');
    assert.ok(await page.locator('.bar').count() >= 1, 'a quota bar per pool');
    // one more assigned ("+"), and the removed one is held for the pool's hold time
    expected.assigned += 1;
    expected.held += 1;
    expected.free -= 2;
    await page.context().close();
  });

  test("a tenant never sees another tenant's VM: not in the list, not by direct URL, not in events", async () => {
    const page = await login('alice');
    await page.waitForSelector('section.vm[data-vm="web1"]');
    const text = await page.textContent('main');
    assert.doesNotMatch(text!, /\bdb1\b/);
    // admin pages are not offered and not reachable
    assert.equal(await page.locator('#nav a[href="#/vms"]').count(), 0);
    await page.goto(url + '/#/vms');
    await page.waitForFunction(() => location.hash === '#/my-vms');
    const direct = await page.evaluate(async () => {
      const r = await fetch('/api/v1/vms/db1');
      const list = await (await fetch('/api/v1/vms')).json();
      const events = await (await fetch('/api/v1/events?limit=1000')).text();
      return { status: r.status, body: await r.text(), list: JSON.stringify(list), events };
    });
    assert.equal(direct.status, 404);
    assert.doesNotMatch(direct.list, foreign());
    assert.doesNotMatch(direct.events, foreign());
    await page.goto(url + '/#/my-events');
    await page.waitForSelector('table');
    assert.doesNotMatch((await page.textContent('main'))!, /\bdb1\b/);
    await page.context().close();
  });

  test("an admin changes a network's default locking and a VIF's locking; ipvisor vif list shows it", async () => {
    const page = await login('bob');
    await page.waitForFunction(() => location.hash === '#/overview');
    await shot(page, 'admin-overview');
    await page.goto(url + '/#/networks');
    await page.waitForSelector('select#netlock-lan');
    await page.selectOption('select#netlock-lan', 'locked');
    await page.waitForSelector('#toast div');
    const net = await cli(tmp.db, 'network', 'show', 'lan', '--json');
    assert.equal(net.json.defaultLocking, 'locked');
    await page.goto(url + '/#/vms');
    await page.waitForSelector('select[id="viflock-db1:0"]');
    await shot(page, 'admin-vms');
    await page.selectOption('select[id="viflock-db1:0"]', 'disabled');
    await page.waitForFunction(() => document.querySelector('tr[data-vif="db1:0"] .tag')?.textContent === 'disabled');
    const vifs = await cli(tmp.db, 'vif', 'list', '--json');
    const db1 = (vifs.json as Array<{ vm: string; locking: string; effectiveLocking: string }>).find((v) => v.vm === 'db1')!;
    assert.equal(db1.locking, 'disabled');
    assert.equal(db1.effectiveLocking, 'disabled');
    // the reason is shown beside the mode
    assert.match((await page.textContent('tr[data-vif="db1:0"]'))!, /explicit/);
    // hosts with their agents' last report, and a host's pending plan lines
    await page.goto(url + '/#/hosts');
    await page.waitForSelector('tr[data-host="hv-web"]');
    assert.match((await page.textContent('tr[data-host="hv-web"]'))!, /7.*1 pending/);
    await page.click('tr[data-host="hv-web"] a');
    await page.waitForSelector('pre.diff[aria-label="plan"]');
    assert.match((await page.textContent('pre.diff'))!, /^\+ nft-element bridge vif_mac "vnet9"/);
    await page.context().close();
  });

  test('the address map of a /22 pool shows exactly the states the store has', async () => {
    const page = await login('bob');
    await page.goto(url + '/#/pool/lan4');
    await page.waitForSelector('.amap[data-block="10.30.3.0/24"]');
    const counts = await page.evaluate(() => {
      const out: Record<string, number> = {};
      document.querySelectorAll('.amap .c').forEach((c) => {
        const s = (c as HTMLElement).dataset.state!;
        out[s] = (out[s] ?? 0) + 1;
      });
      return out;
    });
    assert.deepEqual(counts, expected);
    // every non-free state has a letter (colour is not the only signal) and a legend entry
    const letters = await page.evaluate(() => [...document.querySelectorAll('.amap .c:not([data-state="free"])')].every((c) => (c.textContent ?? '').length === 1));
    assert.ok(letters);
    assert.equal(await page.locator('.legend li').count(), 10);
    // focusing a cell names its holder
    await page.focus('.amap .c[data-address="10.30.3.10"]');
    assert.match((await page.textContent('.celldetail'))!, /10\.30\.3\.10: reserved — printer/);
    await shot(page, 'admin-pool-map');
    // keyboard: Tab from the first cell moves to the next one
    await page.focus('.amap .c[data-address="10.30.0.3"]');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => (document.activeElement as HTMLElement).dataset.address), '10.30.0.4');
    await page.context().close();
  });

  test('a change made through the CLI appears on an open page without reload', async () => {
    const page = await login('bob');
    await page.goto(url + '/#/vms');
    await page.waitForSelector('tr[data-vif="web1:0"]');
    const loads: string[] = [];
    page.on('load', () => loads.push('load'));
    const r = await cli(tmp.db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json');
    assert.equal(r.code, 0, r.stderr);
    const addr = r.json.address as string;
    await page.waitForFunction((a) => [...document.querySelectorAll('tr[data-vif="web1:0"] code')].some((c) => c.textContent === a), addr, { timeout: 15_000 });
    assert.deepEqual(loads, [], 'no reload');
    await page.context().close();
  });

  test('an XSS name renders as text; a form post without the CSRF token is refused', async () => {
    const page = await login('alice');
    await page.waitForSelector(`section.vm h2`);
    const names = await page.$$eval('section.vm h2', (hs) => hs.map((h) => h.textContent));
    assert.ok(names.includes(XSS), 'the name shows as text');
    assert.equal(await page.locator('main img').count(), 0, 'no element was made from it');
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, [], 'no script error on any page so far');
    // A cross-site style form post with the session cookie but no CSRF token: refused, nothing written.
    const before = await cli(tmp.db, 'vm', 'show', 'web1', '--json');
    const status = await page.evaluate(async () => {
      const r = await fetch('/api/v1/addresses', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'vif=web1%3A0&pool=lan4' });
      return r.status;
    });
    assert.equal(status, 403);
    const formStatus = await page.evaluate(async () => {
      const r = await fetch('/api/v1/addresses', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vif: 'web1:0', pool: 'lan4' }) });
      return r.status;
    });
    assert.equal(formStatus, 403);
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/v1/addresses')),
      page.evaluate(() => {
        const f = document.createElement('form');
        f.method = 'post';
        f.action = '/api/v1/addresses';
        const i = document.createElement('input');
        i.name = 'vif';
        i.value = 'web1:0';
        f.append(i);
        document.body.append(f);
        f.submit();
      }),
    ]);
    assert.equal(resp.status(), 403);
    const after = await cli(tmp.db, 'vm', 'show', 'web1', '--json');
    assert.deepEqual(after.json, before.json, 'nothing written');
    await page.context().close();
  });

  test('phone width: readable without horizontal scrolling of the page; every form control has a label', async () => {
    const page = await login('alice', { width: 390, height: 844 });
    await page.waitForSelector('section.vm');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
    await shot(page, 'tenant-phone');
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, button')].filter((e) => {
      const el = e as HTMLElement;
      if (el.getAttribute('aria-label') || (el.textContent ?? '').trim()) return false;
      return !(el.id && document.querySelector(`label[for="${el.id}"]`));
    }).map((e) => e.outerHTML));
    assert.deepEqual(unlabelled, []);
    await page.context().close();
  });

  test('a page loads at most 100 KB of JavaScript and CSS gzipped (400 KB uncompressed)', () => {
    const dir = assetsDir();
    let raw = 0, gz = 0;
    for (const f of ['app.js', 'app.css']) {
      const body = readFileSync(join(dir, f));
      raw += body.length;
      gz += gzipSync(body).length;
    }
    assert.ok(raw <= 400 * 1024, `${raw} bytes`);
    assert.ok(gz <= 100 * 1024, `${gz} bytes gzipped`);
  });
});
