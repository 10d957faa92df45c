// Networks, pools, VMs, VIFs and addresses: each route calls the service function the CLI calls.
import type { FastifyInstance } from 'fastify';
import { Type } from '@fastify/type-provider-typebox';
import { invalid } from '../../core/model/errors.js';
import { addHostAddress, createNetwork, deleteNetwork, removeHostAddress, setNetwork, type NetworkInput } from '../../core/service/networks.js';
import { createPool, deletePool, setPool } from '../../core/service/pools.js';
import { addVif, bindVif, createVm, deleteVif, deleteVm, setVif, setVm } from '../../core/service/vms.js';
import { allocate, release, reserve } from '../../core/service/ip.js';
import {
  assignmentViews, listAssignments, listPools, listVifs, listVms, scopedVif, showAddress, showNetwork, showPool, showVm, vifViews,
} from '../../core/service/views.js';
import { addressKey, parseAddress } from '../../core/ipam/addr.js';
import * as S from './schemas.js';
import { etag, idempotent, ifMatch, page, type ApiOptions } from './index.js';

const E = S.errorResponses;
const Force = Type.Object({ force: Type.Optional(Type.Boolean()) });

export async function registerIpamRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { store } = opts;
  const r = app as FastifyInstance;

  // ---- networks ----
  r.get('/networks', {
    config: { access: 'read' },
    schema: { tags: ['networks'], summary: 'list networks', querystring: Type.Object({ ...S.PageQuery, driver: Type.Optional(Type.String()), mode: Type.Optional(Type.String()) }), response: { 200: S.Page(S.Network), ...E(400, 401, 403) } },
  }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; driver?: string; mode?: string };
    const list = (await store.listNetworks()).filter((n) => (!q.driver || n.driver === q.driver) && (!q.mode || n.mode === q.mode));
    return page(list, q, (n) => n.name);
  });
  r.get('/networks/:network', {
    config: { access: 'read' },
    schema: { tags: ['networks'], summary: 'a network with its pools and usage', params: Type.Object({ network: Type.String() }), querystring: Type.Object(S.FieldsQuery), response: { 200: S.NetworkDetail, ...E(401, 403, 404) } },
  }, async (req, reply) => {
    const { network } = req.params as { network: string };
    const n = await store.transaction((tx) => showNetwork(tx, network));
    const { pools: _p, vifCount: _v, assignmentCount: _a, ...record } = n;
    etag(reply, record);
    return n;
  });
  const NetworkBody = {
    bridge: Type.Optional(S.NullableStr()), mode: Type.Optional(Type.String()), subnets: Type.Optional(Type.Array(Type.String({ description: 'CIDR[,gateway=IP]' }))),
    defaultLocking: Type.Optional(Type.String()), mtu: Type.Optional(Type.Union([Type.Integer(), Type.Null()])), dns: Type.Optional(Type.Array(Type.String())),
    routes: Type.Optional(Type.Array(Type.String({ description: 'CIDR,via=IP' }))), uplink: Type.Optional(S.NullableStr()),
  };
  r.post('/networks', {
    config: { access: 'write' },
    schema: { tags: ['networks'], summary: 'create a network', body: Type.Object({ name: Type.String(), driver: Type.Optional(Type.String()), uuid: Type.Optional(Type.String()), ...NetworkBody }, { additionalProperties: false }), response: { 201: S.Network, ...E(400, 401, 403, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const n = await createNetwork(store, req.body as NetworkInput, req.actor);
    etag(reply, n);
    return { status: 201, body: n };
  }));
  r.patch('/networks/:network', {
    config: { access: 'write' },
    schema: { tags: ['networks'], summary: 'change a network (If-Match: its ETag)', params: Type.Object({ network: Type.String() }), body: Type.Object({ name: Type.Optional(Type.String()), ...NetworkBody }, { additionalProperties: false }), response: { 200: S.Network, ...E(400, 401, 403, 404, 409, 412) } },
  }, async (req, reply) => {
    const { network } = req.params as { network: string };
    const n = await setNetwork(store, network, { ...(req.body as NetworkInput), ifMatch: ifMatch(req) }, req.actor);
    etag(reply, n);
    return n;
  });
  r.delete('/networks/:network', {
    config: { access: 'write' },
    schema: { tags: ['networks'], summary: 'delete a network (force: with its pools, VIFs and assignments)', params: Type.Object({ network: Type.String() }), querystring: Force, response: { 200: S.Network, ...E(401, 403, 404, 409, 412) } },
  }, async (req) => {
    const { network } = req.params as { network: string };
    return deleteNetwork(store, network, { force: (req.query as { force?: boolean }).force, ifMatch: ifMatch(req) }, req.actor);
  });
  r.post('/networks/:network/host-addresses', {
    config: { access: 'write' },
    schema: { tags: ['networks'], summary: "add an address the host holds on the network's bridge", params: Type.Object({ network: Type.String() }), body: Type.Object({ address: Type.String({ description: 'ADDR/LEN' }) }, { additionalProperties: false }), response: { 200: Type.Array(Type.String()), ...E(400, 401, 403, 404, 409) } },
  }, async (req) => (await addHostAddress(store, (req.params as { network: string }).network, (req.body as { address: string }).address, req.actor)).hostAddresses);
  r.delete('/networks/:network/host-addresses', {
    config: { access: 'write' },
    schema: { tags: ['networks'], summary: 'remove a host address', params: Type.Object({ network: Type.String() }), querystring: Type.Object({ address: Type.String() }), response: { 200: Type.Array(Type.String()), ...E(400, 401, 403, 404) } },
  }, async (req) => (await removeHostAddress(store, (req.params as { network: string }).network, (req.query as { address: string }).address, req.actor)).hostAddresses);

  // ---- pools ----
  r.get('/pools', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['pools'], summary: 'list pools with usage (a tenant: the pools it may use)', querystring: Type.Object({ ...S.PageQuery, network: Type.Optional(Type.String()), family: Type.Optional(Type.Integer()), purpose: Type.Optional(Type.String()) }), response: { 200: S.Page(S.PoolView), ...E(400, 401, 403, 404) } },
  }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; network?: string; family?: number; purpose?: string };
    const list = (await store.transaction((tx) => listPools(tx, { network: q.network }, req.scope))).filter((p) => (!q.family || p.family === q.family) && (!q.purpose || p.purpose === q.purpose));
    return page(list, q, (p) => p.name);
  });
  r.get('/pools/:pool', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['pools'], summary: 'a pool with usage and holds', params: Type.Object({ pool: Type.String() }), querystring: Type.Object(S.FieldsQuery), response: { 200: S.PoolDetail, ...E(401, 403, 404) } },
  }, async (req, reply) => {
    const p = await store.transaction((tx) => showPool(tx, (req.params as { pool: string }).pool, req.scope));
    const { network: _n, usage: _u, holds: _h, ...record } = p;
    etag(reply, record);
    return p;
  });
  r.post('/pools', {
    config: { access: 'write' },
    schema: {
      tags: ['pools'], summary: 'create a pool',
      body: Type.Object({ name: Type.String(), network: Type.String(), cidrs: Type.Optional(Type.Array(Type.String())), ranges: Type.Optional(Type.Array(Type.String())), exclude: Type.Optional(Type.Array(Type.String())), purpose: Type.Optional(Type.String()), hold: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
      response: { 201: S.Pool, ...E(400, 401, 403, 404, 409) },
    },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const p = await createPool(store, req.body as never, req.actor);
    etag(reply, p);
    return { status: 201, body: p };
  }));
  r.patch('/pools/:pool', {
    config: { access: 'write' },
    schema: {
      tags: ['pools'], summary: 'change a pool (If-Match: its ETag)', params: Type.Object({ pool: Type.String() }),
      body: Type.Object({ name: Type.Optional(Type.String()), addCidrs: Type.Optional(Type.Array(Type.String())), addRanges: Type.Optional(Type.Array(Type.String())), removeEntries: Type.Optional(Type.Array(Type.String())), exclude: Type.Optional(Type.Array(Type.String())), include: Type.Optional(Type.Array(Type.String())), hold: Type.Optional(Type.Integer()) }, { additionalProperties: false }),
      response: { 200: S.Pool, ...E(400, 401, 403, 404, 409, 412) },
    },
  }, async (req, reply) => {
    const p = await setPool(store, (req.params as { pool: string }).pool, { ...(req.body as object), ifMatch: ifMatch(req) }, req.actor);
    etag(reply, p);
    return p;
  });
  r.delete('/pools/:pool', {
    config: { access: 'write' },
    schema: { tags: ['pools'], summary: 'delete a pool (force: release its assignments)', params: Type.Object({ pool: Type.String() }), querystring: Force, response: { 200: S.Pool, ...E(401, 403, 404, 409, 412) } },
  }, async (req) => deletePool(store, (req.params as { pool: string }).pool, { force: (req.query as { force?: boolean }).force, ifMatch: ifMatch(req) }, req.actor));

  // ---- VMs ----
  r.get('/vms', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['vms'], summary: 'list VMs (a tenant: its own)', querystring: Type.Object({ ...S.PageQuery, owner: Type.Optional(Type.String()), host: Type.Optional(Type.String()) }), response: { 200: S.Page(S.Vm), ...E(400, 401, 403) } },
  }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; owner?: string; host?: string };
    const list = (await store.transaction((tx) => listVms(tx, req.scope))).filter((v) => (!q.owner || v.owner === q.owner) && (!q.host || v.host === q.host));
    return page(list, q, (v) => v.name);
  });
  r.get('/vms/:vm', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['vms'], summary: 'a VM with its VIFs and addresses', params: Type.Object({ vm: Type.String() }), querystring: Type.Object(S.FieldsQuery), response: { 200: S.VmDetail, ...E(401, 403, 404) } },
  }, async (req, reply) => {
    const v = await store.transaction((tx) => showVm(tx, (req.params as { vm: string }).vm, req.scope));
    const { vifs: _v, ...record } = v;
    etag(reply, record);
    return v;
  });
  r.post('/vms', {
    config: { access: 'write' },
    schema: { tags: ['vms'], summary: 'add a VM', body: Type.Object({ name: Type.String(), uuid: Type.Optional(Type.String()), owner: Type.Optional(S.NullableStr()), host: Type.Optional(Type.String()) }, { additionalProperties: false }), response: { 201: S.Vm, ...E(400, 401, 403, 404, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const v = await createVm(store, req.body as never, req.actor);
    etag(reply, v);
    return { status: 201, body: v };
  }));
  r.patch('/vms/:vm', {
    config: { access: 'write' },
    schema: { tags: ['vms'], summary: 'change a VM: owner (an existing tenant or null), name, host (If-Match: its ETag)', params: Type.Object({ vm: Type.String() }), body: Type.Object({ name: Type.Optional(Type.String()), owner: Type.Optional(S.NullableStr()), host: Type.Optional(Type.String()) }, { additionalProperties: false }), response: { 200: S.Vm, ...E(400, 401, 403, 404, 409, 412) } },
  }, async (req, reply) => {
    const v = await setVm(store, (req.params as { vm: string }).vm, { ...(req.body as object), ifMatch: ifMatch(req) }, req.actor);
    etag(reply, v);
    return v;
  });
  r.delete('/vms/:vm', {
    config: { access: 'write' },
    schema: { tags: ['vms'], summary: 'delete a VM, its VIFs, and release their addresses', params: Type.Object({ vm: Type.String() }), response: { 200: Type.Object({ vm: S.Vm, released: S.Released }), ...E(401, 403, 404, 412) } },
  }, async (req) => deleteVm(store, (req.params as { vm: string }).vm, req.actor, { ifMatch: ifMatch(req) }));

  // ---- VIFs ----
  r.get('/vifs', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['vifs'], summary: 'list VIFs with effective locking and addresses (a tenant: its own)', querystring: Type.Object({ ...S.PageQuery, vm: Type.Optional(Type.String()), network: Type.Optional(Type.String()), owner: Type.Optional(Type.String()) }), response: { 200: S.Page(S.VifView), ...E(400, 401, 403, 404) } },
  }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; vm?: string; network?: string; owner?: string };
    if (q.network && req.scope.tenant !== null) throw invalid('network', 'tenants filter by vm');
    const list = await store.transaction((tx) => listVifs(tx, { vm: q.vm, network: q.network, owner: q.owner }, req.scope));
    return page(list, q, (v) => `${v.vm}\u0000${String(v.device).padStart(5, '0')}`);
  });
  r.get('/vifs/:vif', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['vifs'], summary: 'a VIF (VM:DEVICE or UUID)', params: Type.Object({ vif: Type.String() }), querystring: Type.Object(S.FieldsQuery), response: { 200: S.VifView, ...E(400, 401, 403, 404) } },
  }, async (req, reply) => {
    const [v] = await store.transaction(async (tx) => vifViews(tx, [(await scopedVif(tx, (req.params as { vif: string }).vif, req.scope)).vif]));
    const { vm: _vm, network: _n, effectiveLocking: _e, lockingReason: _r, addresses: _a, ...record } = v;
    etag(reply, record);
    return v;
  });
  r.post('/vifs', {
    config: { access: 'write' },
    schema: { tags: ['vifs'], summary: 'add a VIF to a VM', body: Type.Object({ vm: Type.String(), network: Type.String(), mac: Type.String(), device: Type.Optional(Type.Integer()), locking: Type.Optional(Type.String()) }, { additionalProperties: false }), response: { 201: S.VifView, ...E(400, 401, 403, 404, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const v = await addVif(store, req.body as never, req.actor);
    etag(reply, v);
    const [view] = await store.transaction((tx) => vifViews(tx, [v]));
    return { status: 201, body: view };
  }));
  r.patch('/vifs/:vif', {
    config: { access: 'write' },
    schema: { tags: ['vifs'], summary: 'change a VIF: locking, MAC, network (force: release addresses on the old one), ifname (with host: bound on that host, the VM moves there)', params: Type.Object({ vif: Type.String() }), body: Type.Object({ locking: Type.Optional(Type.String()), mac: Type.Optional(Type.String()), network: Type.Optional(Type.String()), ifname: Type.Optional(S.NullableStr()), host: Type.Optional(Type.String({ description: 'with ifname alone: the hypervisor host the interface is on (vif bind --host)' })), force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), response: { 200: S.extend(S.VifView, { released: S.Released }), ...E(400, 401, 403, 404, 409, 412) } },
  }, async (req, reply) => {
    const { host, ...body } = req.body as { host?: string; ifname?: string | null };
    if (host !== undefined) {
      // `vif bind --host`: the binding and the VM's move in one transaction (core/service bindVif)
      if (typeof body.ifname !== 'string' || !body.ifname || Object.keys(body).length !== 1) throw invalid('host', 'goes with ifname alone (the interface bound on that host)');
      if (ifMatch(req) !== undefined) throw invalid('If-Match', 'is not supported together with host');
      const v = await bindVif(store, (req.params as { vif: string }).vif, body.ifname, req.actor, host);
      etag(reply, v);
      const [view] = await store.transaction((tx) => vifViews(tx, [v]));
      return { ...view, released: [] };
    }
    const res = await setVif(store, (req.params as { vif: string }).vif, { ...body, ifMatch: ifMatch(req) }, req.actor);
    etag(reply, res.vif);
    const [view] = await store.transaction((tx) => vifViews(tx, [res.vif]));
    return { ...view, released: res.released };
  });
  r.delete('/vifs/:vif', {
    config: { access: 'write' },
    schema: { tags: ['vifs'], summary: 'delete a VIF and release its addresses', params: Type.Object({ vif: Type.String() }), response: { 200: Type.Object({ vif: S.Vif, released: S.Released }), ...E(400, 401, 403, 404, 412) } },
  }, async (req) => deleteVif(store, (req.params as { vif: string }).vif, req.actor, { ifMatch: ifMatch(req) }));

  // ---- addresses ----
  r.get('/addresses', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['addresses'], summary: 'list assignments and reservations (a tenant: those of its VIFs)', querystring: Type.Object({ ...S.PageQuery, network: Type.Optional(Type.String()), pool: Type.Optional(Type.String()), vm: Type.Optional(Type.String()), vif: Type.Optional(Type.String()), family: Type.Optional(Type.Integer()) }), response: { 200: S.Page(S.AssignmentView), ...E(400, 401, 403, 404) } },
  }, async (req) => {
    const q = req.query as { limit?: number; cursor?: string; network?: string; pool?: string; vm?: string; vif?: string; family?: number };
    if (q.network && req.scope.tenant !== null) throw invalid('network', 'tenants filter by vm, vif or pool');
    const list = await store.transaction((tx) => listAssignments(tx, q, req.scope));
    // the store's order (family, address), so a page reads like `ip list`
    return page(list, q, (a) => `${a.family}|${addressKey(parseAddress(a.address).value)}|${a.uuid}`);
  });
  r.get('/addresses/:address', {
    config: { access: 'read', tenant: true },
    schema: { tags: ['addresses'], summary: 'what an address is: who holds it (or a prefix containing it), or why it is not available (a tenant: only its own)', params: Type.Object({ address: Type.String() }), response: { 200: S.AddressInfo, ...E(400, 401, 403, 404) } },
  }, async (req) => store.transaction((tx) => showAddress(tx, (req.params as { address: string }).address, req.scope)));
  r.post('/addresses', {
    config: { access: 'write', tenant: true },
    schema: {
      tags: ['addresses'], summary: 'allocate an address or routed prefix to a VIF (Idempotency-Key: the request id)',
      body: Type.Object({ vif: Type.String(), pool: Type.Optional(Type.String()), family: Type.Optional(Type.Integer()), address: Type.Optional(Type.String()), prefixLength: Type.Optional(Type.Integer()), requestId: Type.Optional(Type.String()), note: Type.Optional(Type.String()) }, { additionalProperties: false }),
      response: { 200: S.extend(S.AssignmentView, { created: Type.Boolean() }), 201: S.extend(S.AssignmentView, { created: Type.Boolean() }), ...E(400, 401, 403, 404, 409, 422) },
    },
  }, async (req, reply) => {
    const body = req.body as { vif: string; pool?: string; family?: number; address?: string; prefixLength?: number; requestId?: string; note?: string };
    const key = req.headers['idempotency-key'];
    const requestId = body.requestId ?? (typeof key === 'string' ? key : undefined);
    const res = await allocate(store, { ...body, requestId, scope: req.scope }, req.actor);
    const [view] = await store.transaction((tx) => assignmentViews(tx, [res.assignment]));
    reply.status(res.created ? 201 : 200);
    return { ...view, created: res.created };
  });
  r.post('/addresses/reservations', {
    config: { access: 'write' },
    schema: { tags: ['addresses'], summary: 'reserve an address or prefix for no VIF', body: Type.Object({ address: Type.String(), pool: Type.String(), note: Type.Optional(Type.String()) }, { additionalProperties: false }), response: { 201: S.AssignmentView, ...E(400, 401, 403, 404, 409) } },
  }, async (req, reply) => idempotent(store, req, reply, async () => {
    const a = await reserve(store, req.body as never, req.actor);
    const [view] = await store.transaction((tx) => assignmentViews(tx, [a]));
    return { status: 201, body: view };
  }));
  r.delete('/addresses/:address', {
    config: { access: 'write', tenant: true },
    schema: { tags: ['addresses'], summary: 'release an address, prefix (ADDR%2FLEN) or reservation', params: Type.Object({ address: Type.String() }), querystring: Type.Object({ network: Type.Optional(Type.String()) }), response: { 200: S.Assignment, ...E(400, 401, 403, 404, 409) } },
  }, async (req) => {
    const q = req.query as { network?: string };
    if (q.network && req.scope.tenant !== null) {
      // A tenant may not name networks; its own addresses never need one.
      throw invalid('network', 'tenants release by address only');
    }
    return release(store, { address: (req.params as { address: string }).address, network: q.network, scope: req.scope }, req.actor);
  });
}
