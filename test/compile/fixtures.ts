// Builders for Snapshot records used by the host-plan golden tests and the netns packet tests.
import { hostname } from 'node:os';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import type { StoreTx } from '../../src/core/store/store.js';
import type { Assignment, Family, Network, Pool, Vif, Vm } from '../../src/core/model/types.js';

const T = '2026-01-01T00:00:00.000Z';
let counter = 0;
export function uuid(tag: string): string {
  counter++;
  const hex = Buffer.from(`${tag}-${counter}`).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function network(p: Partial<Network> & Pick<Network, 'name'>): Network {
  return { uuid: uuid('net'), driver: 'bridge', bridge: null, mode: 'nat', subnets: [], mtu: null, dns: [], routes: [], defaultLocking: 'unlocked', uplink: null, hostAddresses: [], extra: {}, createdAt: T, updatedAt: T, ...p };
}

export function pool(net: Network, p: Partial<Pool> & { family: Family }): Pool {
  return { uuid: uuid('pool'), name: `${net.name}-${p.purpose ?? 'vif'}${p.family}`, networkUuid: net.uuid, purpose: 'vif', entries: [], exclusions: [], holdSeconds: 0, createdAt: T, updatedAt: T, ...p };
}

export function vm(name: string): Vm {
  return { uuid: uuid('vm'), name, host: hostname(), owner: null, extra: {}, createdAt: T, updatedAt: T };
}

export function vif(v: Vm, net: Network, p: Partial<Vif> & Pick<Vif, 'mac'>): Vif {
  return { uuid: uuid('vif'), vmUuid: v.uuid, device: 0, networkUuid: net.uuid, locking: 'network_default', ifname: null, extra: {}, createdAt: T, updatedAt: T, ...p };
}

export function assign(f: Vif | null, pl: Pool, address: string, p: Partial<Assignment> = {}): Assignment {
  const family: Family = address.includes(':') ? 6 : 4;
  return { uuid: uuid('as'), networkUuid: pl.networkUuid, poolUuid: pl.uuid, vifUuid: f?.uuid ?? null, family, address, prefixLength: family === 4 ? 32 : 128, kind: 'primary', note: null, requestId: null, createdAt: T, ...p };
}

export function emptySnapshot(): Snapshot {
  return { networks: [], pools: [], vms: [], vifs: [], assignments: [] };
}

/** Stores a network with a vif pool and a routed IPv4 pool, and one VM whose VIF holds `address`
 * from the first and `routed` from the second: the set-up the host tests share. */
export async function seedRoutedVif(store: StoreTx, net: Network, v: { vm: string; mac: string; ifname: string; address: string; routed: string }): Promise<Vif> {
  const p4 = pool(net, { family: 4 });
  const pr = pool(net, { family: 4, purpose: 'routed' });
  await store.insertNetwork(net);
  await store.insertPool(p4);
  await store.insertPool(pr);
  const m = vm(v.vm);
  await store.insertVm(m);
  const f = vif(m, net, { mac: v.mac, ifname: v.ifname });
  await store.insertVif(f);
  await store.insertAssignment(assign(f, p4, v.address));
  await store.insertAssignment(assign(f, pr, v.routed, { kind: 'routed' }));
  return f;
}
