import { IpvisorError, invalid } from '../model/errors.js';
import { LOCKING_MODES, NETWORK_DRIVERS, NETWORK_MODES, type LockingMode, type Network, type NetworkDriver, type NetworkMode, type StaticRoute, type Subnet } from '../model/types.js';
import { oneOf, validateIfname, validateInt, validateName, validateNewName, isUuid } from '../model/validate.js';
import { cidrContains, cidrLast, formatAddress, formatCidr, isLinkLocal6, parseAddress, parseCidr } from '../ipam/addr.js';
import { rebuildFreeSpace } from '../ipam/allocator.js';
import { entryIntervals, networkReservedIntervals } from '../ipam/pool-space.js';
import { overlaps } from '../ipam/intervals.js';
import type { Store, StoreTx } from '../store/store.js';
import { audit, checkVersion, inWriteTx, newUuid, now, assignmentName } from './context.js';
import { networkRef } from './resolve.js';
import { checkNetworkSubnetsFree } from './overlap.js';


/** Network fields as the front ends pass them (strings as typed by the user). */
export interface NetworkInput {
  name?: string;
  uuid?: string;
  driver?: string;
  bridge?: string | null;
  mode?: string;
  /** "CIDR[,gateway=IP]" */
  subnets?: string[];
  defaultLocking?: string;
  mtu?: number | string | null;
  dns?: string[];
  /** "CIDR,via=IP" */
  routes?: string[];
  uplink?: string | null;
  extra?: Record<string, unknown>;
  /** API If-Match: the version (ETag) the caller read; checked inside the transaction. */
  ifMatch?: string;
}

/** Bridge and uplink names follow the one interface-name rule (model/validate.ts). */
export { validateIfname };

export function parseSubnet(text: string, field = 'subnet'): Subnet {
  const [cidrText, ...opts] = text.split(',');
  const c = parseCidr(cidrText.trim(), field, { strict: true });
  let gateway: string | null = null;
  for (const o of opts) {
    const m = /^\s*gateway=(.*)$/.exec(o);
    if (!m) throw invalid(field, `unknown option '${o}' in '${text}' (expected CIDR[,gateway=IP])`);
    const g = parseAddress(m[1].trim(), `${field}.gateway`);
    if (g.family !== c.family) throw invalid(`${field}.gateway`, `${m[1]} is IPv${g.family} but the subnet ${cidrText} is IPv${c.family}`);
    if (!cidrContains(c, g.family, g.value) && !isLinkLocal6(g.family, g.value)) {
      throw invalid(`${field}.gateway`, `${m[1]} is outside ${cidrText}`);
    }
    if (c.family === 4 && c.prefixLength <= 30 && (g.value === c.network || g.value === cidrLast(c))) {
      throw invalid(`${field}.gateway`, `${m[1]} is the network or broadcast address of ${cidrText}`);
    }
    gateway = formatAddress(g.family, g.value);
  }
  return { cidr: formatCidr(c.family, c.network, c.prefixLength), family: c.family, gateway };
}

export function parseRoute(text: string, field = 'route'): StaticRoute {
  const [cidrText, ...opts] = text.split(',');
  const c = parseCidr(cidrText.trim(), field, { strict: true });
  let via: string | undefined;
  for (const o of opts) {
    const m = /^\s*via=(.*)$/.exec(o);
    if (!m) throw invalid(field, `unknown option '${o}' in '${text}' (expected CIDR,via=IP)`);
    const g = parseAddress(m[1].trim(), `${field}.via`);
    if (g.family !== c.family) throw invalid(`${field}.via`, `${m[1]} is IPv${g.family} but ${cidrText} is IPv${c.family}`);
    via = formatAddress(g.family, g.value);
  }
  if (!via) throw invalid(field, `'${text}' needs a next hop (CIDR,via=IP)`);
  return { cidr: formatCidr(c.family, c.network, c.prefixLength), via };
}

function checkSubnetsDisjoint(subnets: Subnet[]): void {
  for (let i = 0; i < subnets.length; i++) {
    for (let j = i + 1; j < subnets.length; j++) {
      const a = parseCidr(subnets[i].cidr), b = parseCidr(subnets[j].cidr);
      if (a.family === b.family && overlaps({ start: a.network, end: cidrLast(a) }, { start: b.network, end: cidrLast(b) })) {
        throw new IpvisorError('OVERLAP', `subnet: ${subnets[i].cidr} overlaps ${subnets[j].cidr}`, { field: 'subnet' });
      }
    }
  }
}

/** Builds the validated network record from input over an optional existing one. */
export function buildNetwork(input: NetworkInput, base?: Network): Network {
  const t = now();
  const subnets = input.subnets !== undefined ? input.subnets.map((s) => parseSubnet(s)) : base?.subnets ?? [];
  checkSubnetsDisjoint(subnets);
  const dns = input.dns !== undefined ? input.dns.map((d) => { const a = parseAddress(d, 'dns'); return formatAddress(a.family, a.value); }) : base?.dns ?? [];
  const routes = input.routes !== undefined ? input.routes.map((r) => parseRoute(r)) : base?.routes ?? [];
  const mtu = input.mtu === undefined ? base?.mtu ?? null : input.mtu === null || input.mtu === '' ? null : validateInt(input.mtu, 'mtu', 68, 65535);
  const bridge = input.bridge === undefined ? base?.bridge ?? null : input.bridge === null || input.bridge === '' ? null : validateIfname(input.bridge, 'bridge');
  const uplink = input.uplink === undefined ? base?.uplink ?? null : input.uplink === null || input.uplink === '' ? null : validateIfname(input.uplink, 'uplink');
  return {
    uuid: base?.uuid ?? (input.uuid ? (isUuid(input.uuid) ? input.uuid.toLowerCase() : (() => { throw invalid('uuid', `'${input.uuid}' is not a UUID`); })()) : newUuid()),
    name: input.name !== undefined && input.name !== base?.name ? validateNewName(input.name, 'name', 'network') : base!.name,
    driver: input.driver !== undefined ? oneOf<NetworkDriver>(input.driver, NETWORK_DRIVERS, 'driver') : base?.driver ?? 'bridge',
    bridge,
    mode: input.mode !== undefined ? oneOf<NetworkMode>(input.mode, NETWORK_MODES, 'mode') : base?.mode ?? 'bridged',
    subnets,
    mtu,
    dns,
    routes,
    defaultLocking: input.defaultLocking !== undefined ? oneOf<LockingMode>(input.defaultLocking, LOCKING_MODES, 'default-locking') : base?.defaultLocking ?? 'unlocked',
    uplink,
    hostAddresses: base?.hostAddresses ?? [],
    extra: input.extra !== undefined ? { ...(base?.extra ?? {}), ...input.extra } : base?.extra ?? {},
    createdAt: base?.createdAt ?? t,
    updatedAt: t,
  };
}

/** Checks that the network's pools, assignments and host addresses still fit its subnets. */
async function checkNetworkConsistency(tx: StoreTx, n: Network): Promise<void> {
  for (const pool of await tx.listPools(n.uuid)) {
    if (pool.purpose !== 'vif') continue;
    for (const iv of entryIntervals(pool)) {
      const inside = n.subnets.some((s) => { const c = parseCidr(s.cidr); return c.family === pool.family && iv.start >= c.network && iv.end <= cidrLast(c); });
      if (!inside) throw invalid('subnet', `pool '${pool.name}' (${pool.entries.map((e) => e.text).join(', ')}) would lie outside the network's subnets`);
    }
  }
  const assignments = await tx.listAssignments({ networkUuid: n.uuid });
  for (const fam of [4, 6] as const) {
    for (const r of networkReservedIntervals(n, fam)) {
      const hit = assignments.find((a) => a.family === fam && parseAddress(a.address).value >= r.start && parseAddress(a.address).value <= r.end);
      if (hit) throw new IpvisorError('ADDRESS_TAKEN', `subnet: ${formatAddress(fam, r.start)} would become a reserved address (gateway, network, broadcast or host address) but is assigned (${hit.kind})`, { field: 'subnet' });
    }
  }
}

export async function createNetwork(store: Store, input: NetworkInput, actor: string): Promise<Network> {
  if (!input.name) throw invalid('name', 'is required');
  const n = buildNetwork(input);
  return store.transaction(async (tx) => {
    if (await tx.findNetworkByName(n.name)) throw new IpvisorError('ALREADY_EXISTS', `name: a network named '${n.name}' already exists`, { field: 'name' });
    if (await tx.getNetwork(n.uuid)) throw new IpvisorError('ALREADY_EXISTS', `uuid: a network with UUID ${n.uuid} already exists`, { field: 'uuid' });
    if (n.bridge) {
      const same = (await tx.listNetworks()).find((o) => o.bridge === n.bridge);
      if (same) throw new IpvisorError('ALREADY_EXISTS', `bridge: bridge ${n.bridge} already belongs to network '${same.name}'`, { field: 'bridge' });
    }
    await checkNetworkSubnetsFree(tx, n);
    await tx.insertNetwork(n);
    await audit(tx, { actor, action: 'create', kind: 'network', uuid: n.uuid, name: n.name, after: n });
    return n;
  }, { write: true });
}

export async function setNetwork(store: Store, ref: string, input: NetworkInput, actor: string): Promise<Network> {
  return store.transaction(async (tx) => {
    const before = await networkRef(tx, ref);
    checkVersion(before, input.ifMatch, 'network');
    const after = buildNetwork(input, before);
    if (after.name !== before.name && (await tx.findNetworkByName(after.name))) {
      throw new IpvisorError('ALREADY_EXISTS', `name: a network named '${after.name}' already exists`, { field: 'name' });
    }
    if (after.bridge && after.bridge !== before.bridge) {
      const same = (await tx.listNetworks()).find((o) => o.bridge === after.bridge && o.uuid !== after.uuid);
      if (same) throw new IpvisorError('ALREADY_EXISTS', `bridge: bridge ${after.bridge} already belongs to network '${same.name}'`, { field: 'bridge' });
    }
    await checkNetworkConsistency(tx, after);
    await checkNetworkSubnetsFree(tx, after);
    await tx.updateNetwork(after);
    for (const pool of await tx.listPools(after.uuid)) await rebuildFreeSpace(tx, pool, after);
    await audit(tx, { actor, action: 'set', kind: 'network', uuid: after.uuid, name: after.name, before, after });
    return after;
  }, { write: true });
}

/** Records a driver-side fact on a network (bridge name seen by a hook, XAPI refs ...). */
export async function updateNetworkFacts(store: Store | StoreTx, uuid: string, patch: { bridge?: string | null; extra?: Record<string, unknown> }, actor: string): Promise<Network> {
  const run = async (tx: StoreTx) => {
    const before = await tx.getNetwork(uuid);
    if (!before) throw new IpvisorError('NOT_FOUND', `network: no network with UUID ${uuid}`, { field: 'network' });
    const after: Network = { ...before, bridge: patch.bridge === undefined ? before.bridge : patch.bridge, extra: { ...before.extra, ...(patch.extra ?? {}) }, updatedAt: now() };
    if (JSON.stringify({ ...after, updatedAt: '' }) === JSON.stringify({ ...before, updatedAt: '' })) return before;
    await tx.updateNetwork(after);
    await audit(tx, { actor, action: 'set', kind: 'network', uuid, name: after.name, before, after });
    return after;
  };
  return inWriteTx(store, run);
}

export async function deleteNetwork(store: Store, ref: string, opts: { force?: boolean; ifMatch?: string }, actor: string): Promise<Network> {
  return store.transaction(async (tx) => {
    const n = await networkRef(tx, ref);
    checkVersion(n, opts.ifMatch, 'network');
    const assignments = await tx.listAssignments({ networkUuid: n.uuid });
    const vifs = (await tx.listVifs()).filter((v) => v.networkUuid === n.uuid);
    if ((assignments.length || vifs.length) && !opts.force) {
      const what = [assignments.length ? `${assignments.length} assignment(s): ${assignments.slice(0, 5).map((a) => a.address).join(', ')}${assignments.length > 5 ? ', ...' : ''}` : '', vifs.length ? `${vifs.length} VIF(s)` : ''].filter(Boolean).join(' and ');
      throw new IpvisorError('IN_USE', `network: '${n.name}' is in use by ${what}; use --force to delete it anyway`, { field: 'network', details: { assignments: assignments.map((a) => a.address), vifs: vifs.map((v) => v.uuid) } });
    }
    for (const a of assignments) {
      await tx.deleteRequestsFor(a.uuid);
      await tx.deleteAssignment(a.uuid);
      await audit(tx, { actor, action: 'release', kind: 'assignment', uuid: a.uuid, name: assignmentName(a), before: a });
    }
    for (const v of vifs) {
      await tx.deleteVif(v.uuid);
      const vm = await tx.getVm(v.vmUuid);
      await audit(tx, { actor, action: 'delete', kind: 'vif', uuid: v.uuid, name: vm ? `${vm.name}:${v.device}` : null, before: v });
    }
    for (const p of await tx.listPools(n.uuid)) {
      await tx.deletePool(p.uuid);
      await audit(tx, { actor, action: 'delete', kind: 'pool', uuid: p.uuid, name: p.name, before: p });
    }
    await tx.deleteNetwork(n.uuid);
    await audit(tx, { actor, action: 'delete', kind: 'network', uuid: n.uuid, name: n.name, before: n });
    return n;
  }, { write: true });
}

/** Addresses the host holds on the network's bridge: never handed out, put on the bridge by apply. */
export async function addHostAddress(store: Store, ref: string, cidrText: string, actor: string): Promise<Network> {
  return store.transaction(async (tx) => {
    const before = await networkRef(tx, ref);
    const c = parseCidr(cidrText, 'address');
    if (c.prefixLength === (c.family === 4 ? 32 : 128) && !cidrText.includes('/')) throw invalid('address', `'${cidrText}' needs a prefix length (ADDR/LEN)`);
    const text = `${formatAddress(c.family, c.address)}/${c.prefixLength}`;
    if (c.family === 4 && c.prefixLength <= 30 && (c.address === c.network || c.address === cidrLast(c))) {
      throw invalid('address', `${text} is the network or broadcast address of its prefix`);
    }
    if (c.family === 6 && c.prefixLength < 127 && c.address === c.network) {
      throw invalid('address', `${text} is the subnet-router anycast address of its prefix (pick a host address, e.g. ${formatAddress(6, c.network + 1n)}/${c.prefixLength})`);
    }
    // On a network with subnets, the host's address lies inside one of them (prefix included): an
    // address elsewhere would put a foreign prefix on the bridge. A network without subnets (a plain
    // bridge, XAPI's management network) takes any; IPv6 link-local is on every link.
    if (before.subnets.length && !isLinkLocal6(c.family, c.address)) {
      const home = before.subnets.find((s) => {
        const n = parseCidr(s.cidr);
        return n.family === c.family && c.address >= n.network && c.address <= cidrLast(n) && c.prefixLength >= n.prefixLength;
      });
      if (!home) throw invalid('address', `${text} is outside the subnets of network '${before.name}' (${before.subnets.map((s) => s.cidr).join(', ')})`);
    }
    if (before.hostAddresses.includes(text)) return before;
    if (before.hostAddresses.some((h) => parseCidr(h).address === c.address && parseCidr(h).family === c.family)) {
      throw new IpvisorError('ALREADY_EXISTS', `address: ${formatAddress(c.family, c.address)} is already a host address of '${before.name}'`, { field: 'address' });
    }
    const taken = await tx.listAssignments({ networkUuid: before.uuid, address: formatAddress(c.family, c.address) });
    if (taken.length) throw new IpvisorError('ADDRESS_TAKEN', `address: ${formatAddress(c.family, c.address)} is assigned (${taken[0].kind}); release it first`, { field: 'address' });
    const after: Network = { ...before, hostAddresses: [...before.hostAddresses, text], updatedAt: now() };
    await tx.updateNetwork(after);
    for (const pool of await tx.listPools(after.uuid)) await rebuildFreeSpace(tx, pool, after);
    await audit(tx, { actor, action: 'host-address-add', kind: 'network', uuid: after.uuid, name: after.name, before, after });
    return after;
  }, { write: true });
}

export async function removeHostAddress(store: Store, ref: string, cidrText: string, actor: string): Promise<Network> {
  return store.transaction(async (tx) => {
    const before = await networkRef(tx, ref);
    const c = parseCidr(cidrText, 'address', { allowBare: true });
    const keep = before.hostAddresses.filter((h) => { const p = parseCidr(h); return !(p.family === c.family && p.address === c.address); });
    if (keep.length === before.hostAddresses.length) throw new IpvisorError('NOT_FOUND', `address: ${cidrText} is not a host address of '${before.name}'`, { field: 'address' });
    const after: Network = { ...before, hostAddresses: keep, updatedAt: now() };
    await tx.updateNetwork(after);
    for (const pool of await tx.listPools(after.uuid)) await rebuildFreeSpace(tx, pool, after);
    await audit(tx, { actor, action: 'host-address-remove', kind: 'network', uuid: after.uuid, name: after.name, before, after });
    return after;
  }, { write: true });
}
