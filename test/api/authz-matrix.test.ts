// The authorisation matrix: every route x every role x own / foreign / missing object, with the
// exact status; for a tenant's 2xx, nothing of another tenant in the body. A route the server has
// and this table lacks (or the other way round) fails the test. Every answer is also validated
// against the OpenAPI document (support/api.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate, reserve } from '../../src/core/service/ip.js';
import { createTenant } from '../../src/core/service/tenants.js';
import { addHost } from '../../src/server/hosts.js';
import { createToken, createUser } from '../../src/core/service/auth.js';
import { addHostAddress } from '../../src/core/service/networks.js';
import { startApi, type ApiHarness } from '../support/api.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

type Variant = 'own' | 'foreign' | 'missing' | 'none';
type Who = 'admin' | 'operator' | 'auditor' | 'tenant' | 'agent' | 'anonymous';
const WHO: Who[] = ['admin', 'operator', 'auditor', 'tenant', 'agent', 'anonymous'];

interface Entry {
  route: string;
  variants: Variant[];
  /** Builds the request; may create fixtures (n is unique per call). */
  request(v: Variant, n: number): Promise<{ url: string; body?: unknown }>;
  /** Status per role; a tenant's may differ by variant. Roles left out: 403. Anonymous: 401
   * unless given. For an allowed role, the missing variant answers `missing` (default 404). */
  ok: Partial<Record<Exclude<Who, 'tenant'>, number>> & { tenant?: number | Partial<Record<Variant, number>> };
  missing?: number;
}

const FOREIGN_MARKERS = ['globex', '192.0.2.20', '52:54:00:00:02:01', 'other4'];

describe('authorisation matrix', () => {
  let api: ApiHarness;
  let n = 0;
  const A = 'fixture';

  before(async () => {
    api = await startApi({ failedAuthLimit: 100000 });
    const s = api.store;
    await createNetwork(s, { name: 'lan', subnets: ['192.0.2.0/24,gateway=192.0.2.1', '2001:db8:10::/64'] }, A);
    await createNetwork(s, { name: 'other', subnets: ['198.51.100.0/24'] }, A);
    await createPool(s, { name: 'lan4', network: 'lan', cidrs: ['192.0.2.0/24'] }, A);
    await createPool(s, { name: 'lan6', network: 'lan', cidrs: ['2001:db8:10::/64'] }, A);
    await createPool(s, { name: 'other4', network: 'other', cidrs: ['198.51.100.0/24'] }, A);
    await createTenant(s, { name: 'acme', pools: ['lan4', 'lan6'] }, A);
    await createTenant(s, { name: 'globex', pools: ['lan4', 'other4'] }, A);
    await createVm(s, { name: 'acme-web', owner: 'acme', host: 'hv1' }, A);
    await createVm(s, { name: 'globex-db', owner: 'globex', host: 'hv1' }, A);
    await createVm(s, { name: 'orphan', host: 'hv1' }, A);
    await addVif(s, { vm: 'acme-web', network: 'lan', mac: '52:54:00:00:01:01' }, A);
    await addVif(s, { vm: 'globex-db', network: 'lan', mac: '52:54:00:00:02:01' }, A);
    await addVif(s, { vm: 'orphan', network: 'lan', mac: '52:54:00:00:03:01' }, A);
    await allocate(s, { vif: 'acme-web:0', address: '192.0.2.10' }, A);
    await allocate(s, { vif: 'globex-db:0', address: '192.0.2.20' }, A);
    await createUser(s, { name: 'ui-user', role: 'auditor', password: 'correct horse' }, A);
    await addHost(s, 'hv1', A);
    for (const [name, role, tenant] of [['admin', 'admin'], ['operator', 'operator'], ['auditor', 'auditor'], ['tenant', 'tenant', 'acme'], ['agent', 'agent']] as const) {
      await api.token(name, role, tenant);
    }
  });
  after(async () => api.close());

  const s = () => api.store;
  /** A fresh VM (owned by acme for own, globex for foreign) with one VIF on lan. */
  const vmFor = async (v: Variant, k: number, withVif = true) => {
    const name = `${v === 'foreign' ? 'gx' : 'ac'}-${k}`;
    await createVm(s(), { name, owner: v === 'foreign' ? 'globex' : 'acme', host: 'hv1' }, A);
    if (withVif) await addVif(s(), { vm: name, network: 'lan', mac: `52:54:00:10:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}` }, A);
    return name;
  };
  const netFor = async (k: number) => {
    const name = `net-${k}`;
    await createNetwork(s(), { name, subnets: [`10.${k >> 8}.${k & 255}.0/24`] }, A);
    return name;
  };
  const allowed = { admin: 200, operator: 200, auditor: 200 };
  const created = { admin: 201, operator: 201 };
  const changed = { admin: 200, operator: 200 };

  const MATRIX: Entry[] = [
    { route: 'GET /api/v1/openapi.json', variants: ['none'], request: async () => ({ url: '/api/v1/openapi.json' }), ok: { ...allowed, agent: 200, anonymous: 200, tenant: 200 } },
    // the web UI's shell and assets: public (no data in them; the page asks the API for everything)
    // Prometheus metrics: an in-process request has no loopback socket, so it is the non-loopback
    // rule (admin or auditor); the loopback rule is tested on real listeners in test/ops/metrics.test.ts
    { route: 'GET /metrics', variants: ['none'], request: async () => ({ url: '/metrics' }), ok: { admin: 200, auditor: 200 } },
    { route: 'GET /', variants: ['none'], request: async () => ({ url: '/' }), ok: { ...allowed, agent: 200, anonymous: 200, tenant: 200 } },
    { route: 'GET /assets/:name', variants: ['own', 'missing'], request: async (v) => ({ url: v === 'own' ? '/assets/app.js' : '/assets/nothing.js' }), ok: { ...allowed, agent: 200, anonymous: 200, tenant: 200 } },
    // hypervisor hosts and their agents' reports: staff only
    { route: 'GET /api/v1/hosts', variants: ['none'], request: async () => ({ url: '/api/v1/hosts' }), ok: allowed },
    { route: 'GET /api/v1/hosts/:host', variants: ['own', 'missing'], request: async (v) => ({ url: `/api/v1/hosts/${v === 'own' ? 'hv1' : 'nohost'}` }), ok: allowed },
    { route: 'POST /api/v1/hosts', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/hosts', body: { name: `hv-${k}` } }), ok: { admin: 201 } },
    { route: 'POST /api/v1/hosts/:host/rotate-token', variants: ['own', 'missing'], request: async (v, k) => {
      if (v === 'missing') return { url: '/api/v1/hosts/nohost/rotate-token' };
      await addHost(s(), `hv-${k}`, A);
      return { url: `/api/v1/hosts/hv-${k}/rotate-token` };
    }, ok: { admin: 200 } },
    // a host's own default route: staff read it, admins change it (any host name: no missing variant)
    { route: 'GET /api/v1/hosts/:host/gateway', variants: ['none'], request: async () => ({ url: '/api/v1/hosts/hv1/gateway' }), ok: allowed },
    { route: 'PUT /api/v1/hosts/:host/gateway', variants: ['none'], request: async () => ({ url: '/api/v1/hosts/hv1/gateway', body: { via: '192.0.2.254' } }), ok: { admin: 200 } },
    { route: 'DELETE /api/v1/hosts/:host/gateway', variants: ['none'], request: async () => ({ url: '/api/v1/hosts/hv1/gateway' }), ok: { admin: 200 } },
    { route: 'DELETE /api/v1/hosts/:host', variants: ['own', 'missing'], request: async (v, k) => {
      if (v === 'missing') return { url: '/api/v1/hosts/nohost' };
      await addHost(s(), `hv-${k}`, A);
      return { url: `/api/v1/hosts/hv-${k}` };
    }, ok: { admin: 200 } },
    // a pool's address map: staff only; its free addresses: a tenant for the pools open to it
    { route: 'GET /api/v1/pools/:pool/map', variants: ['own', 'missing'], request: async (v) => ({ url: `/api/v1/pools/${v === 'own' ? 'lan4' : 'nopool'}/map` }), ok: allowed },
    { route: 'GET /api/v1/pools/:pool/free', variants: ['own', 'foreign', 'missing'], request: async (v) => ({ url: `/api/v1/pools/${v === 'own' ? 'lan4' : v === 'foreign' ? 'other4' : 'nopool'}/free?limit=3` }), ok: { ...allowed, tenant: { own: 200, foreign: 404, missing: 404 } } },
    // networks: no tenant access at all
    { route: 'GET /api/v1/networks', variants: ['none'], request: async () => ({ url: '/api/v1/networks' }), ok: allowed },
    { route: 'GET /api/v1/networks/:network', variants: ['own', 'missing'], request: async (v) => ({ url: `/api/v1/networks/${v === 'missing' ? 'nonet' : 'lan'}` }), ok: allowed },
    { route: 'POST /api/v1/networks', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/networks', body: { name: `new-${k}` } }), ok: created },
    { route: 'PATCH /api/v1/networks/:network', variants: ['own', 'missing'], request: async (v, k) => ({ url: `/api/v1/networks/${v === 'missing' ? 'nonet' : await netFor(k)}`, body: { mtu: 1400 } }), ok: changed },
    { route: 'DELETE /api/v1/networks/:network', variants: ['own', 'missing'], request: async (v, k) => ({ url: `/api/v1/networks/${v === 'missing' ? 'nonet' : await netFor(k)}` }), ok: changed },
    {
      route: 'POST /api/v1/networks/:network/host-addresses', variants: ['own', 'missing'],
      request: async (v, k) => ({ url: `/api/v1/networks/${v === 'missing' ? 'nonet' : await netFor(k)}/host-addresses`, body: { address: `10.${k >> 8}.${k & 255}.1/24` } }), ok: changed,
    },
    {
      route: 'DELETE /api/v1/networks/:network/host-addresses', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/networks/nonet/host-addresses?address=10.0.0.1' };
        const net = await netFor(k);
        await addHostAddress(s(), net, `10.${k >> 8}.${k & 255}.1/24`, A);
        return { url: `/api/v1/networks/${net}/host-addresses?address=10.${k >> 8}.${k & 255}.1` };
      },
      ok: changed,
    },
    // pools: a tenant sees the pools it may use
    { route: 'GET /api/v1/pools', variants: ['none'], request: async () => ({ url: '/api/v1/pools' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/pools/:pool', variants: ['own', 'foreign', 'missing'], request: async (v) => ({ url: `/api/v1/pools/${v === 'own' ? 'lan4' : v === 'foreign' ? 'other4' : 'nopool'}` }), ok: { ...allowed, tenant: { own: 200, foreign: 404, missing: 404 } } },
    { route: 'POST /api/v1/pools', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/pools', body: { name: `p-${k}`, network: await netFor(k), cidrs: [`10.${k >> 8}.${k & 255}.0/25`] } }), ok: created },
    {
      route: 'PATCH /api/v1/pools/:pool', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/pools/nopool', body: { hold: 5 } };
        await createPool(s(), { name: `p-${k}`, network: await netFor(k), cidrs: [`10.${k >> 8}.${k & 255}.0/25`] }, A);
        return { url: `/api/v1/pools/p-${k}`, body: { hold: 5 } };
      },
      ok: changed,
    },
    {
      route: 'DELETE /api/v1/pools/:pool', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/pools/nopool' };
        await createPool(s(), { name: `p-${k}`, network: await netFor(k), cidrs: [`10.${k >> 8}.${k & 255}.0/25`] }, A);
        return { url: `/api/v1/pools/p-${k}` };
      },
      ok: changed,
    },
    // VMs
    { route: 'GET /api/v1/vms', variants: ['none'], request: async () => ({ url: '/api/v1/vms' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/vms/:vm', variants: ['own', 'foreign', 'missing'], request: async (v) => ({ url: `/api/v1/vms/${v === 'own' ? 'acme-web' : v === 'foreign' ? 'globex-db' : 'novm'}` }), ok: { ...allowed, tenant: { own: 200, foreign: 404, missing: 404 } } },
    { route: 'POST /api/v1/vms', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/vms', body: { name: `v-${k}`, host: 'hv1' } }), ok: created },
    { route: 'PATCH /api/v1/vms/:vm', variants: ['own', 'foreign', 'missing'], request: async (v, k) => ({ url: `/api/v1/vms/${v === 'missing' ? 'novm' : await vmFor(v, k, false)}`, body: { host: 'hv2' } }), ok: changed },
    { route: 'DELETE /api/v1/vms/:vm', variants: ['own', 'foreign', 'missing'], request: async (v, k) => ({ url: `/api/v1/vms/${v === 'missing' ? 'novm' : await vmFor(v, k, false)}` }), ok: changed },
    // VIFs
    { route: 'GET /api/v1/vifs', variants: ['none'], request: async () => ({ url: '/api/v1/vifs' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/vifs/:vif', variants: ['own', 'foreign', 'missing'], request: async (v) => ({ url: `/api/v1/vifs/${v === 'own' ? 'acme-web:0' : v === 'foreign' ? 'globex-db:0' : 'novm:0'}` }), ok: { ...allowed, tenant: { own: 200, foreign: 404, missing: 404 } } },
    { route: 'POST /api/v1/vifs', variants: ['own', 'foreign', 'missing'], request: async (v, k) => ({ url: '/api/v1/vifs', body: { vm: v === 'missing' ? 'novm' : await vmFor(v, k, false), network: 'lan', mac: `52:54:00:20:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}` } }), ok: created },
    { route: 'PATCH /api/v1/vifs/:vif', variants: ['own', 'foreign', 'missing'], request: async (v, k) => ({ url: `/api/v1/vifs/${v === 'missing' ? 'novm' : await vmFor(v, k)}:0`, body: { locking: 'locked' } }), ok: changed },
    { route: 'DELETE /api/v1/vifs/:vif', variants: ['own', 'foreign', 'missing'], request: async (v, k) => ({ url: `/api/v1/vifs/${v === 'missing' ? 'novm' : await vmFor(v, k)}:0` }), ok: changed },
    // addresses: tenants allocate and release on their own VIFs
    { route: 'GET /api/v1/addresses', variants: ['none'], request: async () => ({ url: '/api/v1/addresses' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/addresses/:address', variants: ['own', 'foreign', 'missing'], request: async (v) => ({ url: `/api/v1/addresses/${v === 'own' ? '192.0.2.10' : v === 'foreign' ? '192.0.2.20' : '10.255.255.1'}` }), ok: { ...allowed, tenant: { own: 200, foreign: 404, missing: 404 } }, missing: 200 },  // ip show describes any address ('outside')
    {
      route: 'POST /api/v1/addresses', variants: ['own', 'foreign', 'missing'],
      request: async (v, k) => ({ url: '/api/v1/addresses', body: { vif: `${v === 'missing' ? 'novm' : await vmFor(v, k)}:0`, pool: 'lan4' } }),
      ok: { ...created, tenant: { own: 201, foreign: 404, missing: 404 } },
    },
    { route: 'POST /api/v1/addresses/reservations', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/addresses/reservations', body: { address: `2001:db8:10::${(0x1000 + k).toString(16)}`, pool: 'lan6' } }), ok: created },
    {
      route: 'DELETE /api/v1/addresses/:address', variants: ['own', 'foreign', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/addresses/192.0.2.250' };
        const vm = await vmFor(v, k);
        const a = await allocate(s(), { vif: `${vm}:0`, pool: 'lan6' }, A);
        return { url: `/api/v1/addresses/${a.assignment.address}` };
      },
      ok: { ...changed, tenant: { own: 200, foreign: 404, missing: 404 } },
    },
    // events, plan, status
    { route: 'GET /api/v1/events', variants: ['none'], request: async () => ({ url: '/api/v1/events?limit=1000' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/events/stream', variants: ['none'], request: async () => ({ url: '/api/v1/events/stream?after=0' }), ok: { ...allowed, tenant: 200 } },
    { route: 'GET /api/v1/plan', variants: ['none'], request: async () => ({ url: '/api/v1/plan' }), ok: allowed },
    { route: 'GET /api/v1/status', variants: ['none'], request: async () => ({ url: '/api/v1/status' }), ok: allowed },
    // tenants, tokens, users: admin changes, auditor reads
    { route: 'GET /api/v1/tenants', variants: ['none'], request: async () => ({ url: '/api/v1/tenants' }), ok: { admin: 200, auditor: 200 } },
    { route: 'GET /api/v1/tenants/:tenant', variants: ['own', 'missing'], request: async (v) => ({ url: `/api/v1/tenants/${v === 'own' ? 'acme' : 'notenant'}` }), ok: { admin: 200, auditor: 200 } },
    { route: 'POST /api/v1/tenants', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/tenants', body: { name: `t-${k}`, pools: ['lan4'], quota: ['lan4=3'] } }), ok: { admin: 201 } },
    {
      route: 'PATCH /api/v1/tenants/:tenant', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/tenants/notenant', body: { quota: ['family4=2'] } };
        await createTenant(s(), { name: `t-${k}` }, A);
        return { url: `/api/v1/tenants/t-${k}`, body: { quota: ['family4=2'] } };
      },
      ok: { admin: 200 },
    },
    {
      route: 'DELETE /api/v1/tenants/:tenant', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/tenants/notenant' };
        await createTenant(s(), { name: `t-${k}` }, A);
        return { url: `/api/v1/tenants/t-${k}` };
      },
      ok: { admin: 200 },
    },
    { route: 'GET /api/v1/tokens', variants: ['none'], request: async () => ({ url: '/api/v1/tokens' }), ok: { admin: 200, auditor: 200 } },
    { route: 'GET /api/v1/tokens/:name', variants: ['own', 'missing'], request: async (v) => ({ url: `/api/v1/tokens/${v === 'own' ? 'operator' : 'notoken'}` }), ok: { admin: 200, auditor: 200 } },
    { route: 'POST /api/v1/tokens', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/tokens', body: { name: `tok-${k}`, role: 'auditor', expires: '1d' } }), ok: { admin: 201 } },
    {
      route: 'POST /api/v1/tokens/:name/revoke', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/tokens/notoken/revoke' };
        await createToken(s(), { name: `tok-${k}`, role: 'auditor' }, A);
        return { url: `/api/v1/tokens/tok-${k}/revoke` };
      },
      ok: { admin: 200 },
    },
    {
      route: 'POST /api/v1/tokens/:name/rotate', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/tokens/notoken/rotate' };
        await createToken(s(), { name: `tok-${k}`, role: 'auditor' }, A);
        return { url: `/api/v1/tokens/tok-${k}/rotate` };
      },
      ok: { admin: 200 },
    },
    { route: 'GET /api/v1/users', variants: ['none'], request: async () => ({ url: '/api/v1/users' }), ok: { admin: 200, auditor: 200 } },
    { route: 'POST /api/v1/users', variants: ['none'], request: async (_v, k) => ({ url: '/api/v1/users', body: { name: `u-${k}`, role: 'operator', password: 'long enough' } }), ok: { admin: 201 } },
    {
      route: 'DELETE /api/v1/users/:name', variants: ['own', 'missing'],
      request: async (v, k) => {
        if (v === 'missing') return { url: '/api/v1/users/nouser' };
        await createUser(s(), { name: `u-${k}`, role: 'operator', password: 'long enough' }, A);
        return { url: `/api/v1/users/u-${k}` };
      },
      ok: { admin: 200 },
    },
    // session and who am I: every authenticated caller; login is public
    { route: 'POST /api/v1/session', variants: ['none'], request: async () => ({ url: '/api/v1/session', body: { name: 'ui-user', password: 'correct horse' } }), ok: { admin: 200, operator: 200, auditor: 200, tenant: 200, agent: 200, anonymous: 200 } },
    { route: 'DELETE /api/v1/session', variants: ['none'], request: async () => ({ url: '/api/v1/session' }), ok: { admin: 200, operator: 200, auditor: 200, tenant: 200, agent: 200 } },
    { route: 'GET /api/v1/me', variants: ['none'], request: async () => ({ url: '/api/v1/me' }), ok: { admin: 200, operator: 200, auditor: 200, tenant: 200, agent: 200 } },
  ];

  function expected(e: Entry, who: Who, v: Variant): number {
    let st: number | undefined;
    if (who === 'tenant') st = typeof e.ok.tenant === 'number' ? e.ok.tenant : e.ok.tenant?.[v];
    else st = e.ok[who];
    if (st === undefined) return who === 'anonymous' ? 401 : 403;
    if (v === 'missing' && st < 300 && (who !== 'tenant' || typeof e.ok.tenant === 'number')) return e.missing ?? 404;
    return st;
  }

  test('every route of the server has an entry, and every entry a route', () => {
    const routes = new Set(api.app.routeTable);
    const entries = new Set(MATRIX.map((e) => e.route));
    for (const r of routes) assert.ok(entries.has(r), `route ${r} has no entry in the authorisation matrix`);
    for (const r of entries) assert.ok(routes.has(r), `matrix entry ${r} matches no route`);
  });

  for (const e of MATRIX) {
    test(e.route, async () => {
      const [method] = e.route.split(' ');
      for (const who of WHO) {
        for (const v of e.variants) {
          const { url, body } = await e.request(v, ++n);
          const want = expected(e, who, v);
          if (e.route.endsWith('/events/stream') && want === 200) {
            await checkStream(url, who);
            continue;
          }
          const r = await api.req(who === 'anonymous' ? null : who, method, url, body ?? (method === 'POST' ? {} : undefined));
          assert.equal(r.status, want, `${e.route} as ${who} (${v}): ${r.text.slice(0, 200)}`);
          if (who === 'tenant' && r.status < 300) {
            for (const m of FOREIGN_MARKERS) assert.ok(!r.text.includes(m), `${e.route} (${v}) shows the tenant '${m}' of another tenant`);
          }
          if (r.status >= 400) assert.ok(r.body?.error?.code, 'an error body');
        }
      }
    });
  }

  /** The stream is endless: on a real port, read its head and first events, then hang up. */
  async function checkStream(path: string, who: Who): Promise<void> {
    const url = await api.app.listen({ host: '127.0.0.1', port: 0 }).catch(() => `http://127.0.0.1:${(api.app.server.address() as { port: number }).port}`);
    const ac = new AbortController();
    const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${api.tokens[who]}` }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5000;
    while (!text.includes('event: audit') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
      // the history up to now is sent at once; wait for a quiet moment
      if (text.includes('event: audit')) await new Promise((r) => setTimeout(r, 200));
    }
    ac.abort();
    assert.match(text, /event: audit/);
    if (who === 'tenant') for (const m of FOREIGN_MARKERS) assert.ok(!text.includes(m), `the event stream shows '${m}' to tenant acme`);
  }
});
