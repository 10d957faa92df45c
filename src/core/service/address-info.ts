// What one address is, in one shape whatever its state (`ip show`, and the API later): an
// enumerated state from ADDRESS_STATES, who holds it, and until when / why it is not available.
import type { Assignment, AssignmentKind, Network } from '../model/types.js';
import { type AddressState } from '../ipam/address-map.js';
import { BITS, cidrLast, formatAddress, parseAddress, parseCidr } from '../ipam/addr.js';
import { entryIntervals, exclusionIntervals } from '../ipam/pool-space.js';
import type { StoreTx } from '../store/store.js';

export interface AddressInfo {
  address: string;
  family: 4 | 6;
  state: AddressState;
  /** The network whose subnet, role or pool holds the address; null when outside all of them. */
  network: string | null;
  pool: string | null;
  /** For assigned and reserved addresses: VM:DEVICE (null for a reservation), the assignment's
   * kind and CIDR (a routed prefix containing the address), note, request id, creation time. */
  vif: string | null;
  kind: AssignmentKind | null;
  cidr: string | null;
  note: string | null;
  requestId: string | null;
  since: string | null;
  /** For held addresses: when the hold ends. */
  until: string | null;
  /** Why the address is not handed out (excluded, gateway ...), or why it is outside. */
  reason: string | null;
}

const inside = (v: bigint, iv: { start: bigint; end: bigint }) => v >= iv.start && v <= iv.end;

/** The assignments (an address, or a routed prefix) that contain `value`, by address: a point probe
 * per pool of the family (UsageStore.listAssignmentsInRange), never a listing of every assignment. */
export async function assignmentsCovering(tx: StoreTx, family: 4 | 6, value: bigint): Promise<Assignment[]> {
  const found: Assignment[] = [];
  for (const p of await tx.listPools()) {
    if (p.family === family) found.push(...await tx.listAssignmentsInRange(p.uuid, value, value));
  }
  return found.sort((x, y) => {
    const a = parseAddress(x.address).value, b = parseAddress(y.address).value;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

export async function describeAddress(tx: StoreTx, text: string): Promise<AddressInfo> {
  const a = parseAddress(text, 'address');
  const address = formatAddress(a.family, a.value);
  const info: AddressInfo = { address, family: a.family, state: 'outside', network: null, pool: null, vif: null, kind: null, cidr: null, note: null, requestId: null, since: null, until: null, reason: null };
  const networks = await tx.listNetworks();
  const netName = (uuid: string) => networks.find((n) => n.uuid === uuid)?.name ?? uuid;
  const pools = await tx.listPools();

  // An assignment (a single address or a routed prefix that contains it) wins.
  const held = (await assignmentsCovering(tx, a.family, a.value))[0];
  if (held) {
    let vif: string | null = null;
    if (held.vifUuid) {
      const v = await tx.getVif(held.vifUuid);
      const vm = v ? await tx.getVm(v.vmUuid) : undefined;
      vif = v ? `${vm?.name ?? v.vmUuid}:${v.device}` : held.vifUuid;
    }
    const full = held.prefixLength === BITS[held.family];
    return { ...info, state: held.kind === 'reserved' ? 'reserved' : 'assigned', network: netName(held.networkUuid), pool: pools.find((p) => p.uuid === held.poolUuid)?.name ?? held.poolUuid, vif, kind: held.kind, cidr: full ? held.address : `${held.address}/${held.prefixLength}`, note: held.note, requestId: held.requestId, since: held.createdAt };
  }

  // A role in a network: gateway, network/broadcast address, host address.
  for (const n of networks) {
    const role = networkRole(n, a.family, a.value);
    if (role) return { ...info, network: n.name, ...role };
  }

  // A pool that contains it: held, excluded or free.
  for (const p of pools) {
    if (p.family !== a.family || !entryIntervals(p).some((iv) => inside(a.value, iv))) continue;
    const base = { ...info, network: netName(p.networkUuid), pool: p.name };
    const hold = (await tx.listHolds(p.uuid)).find((h) => inside(a.value, h));
    if (hold) return { ...base, state: 'held', until: hold.until, reason: `released; pool '${p.name}' holds it for ${p.holdSeconds} s` };
    const x = p.exclusions.find((e, i) => inside(a.value, exclusionIntervals(p)[i]));
    if (x) return { ...base, state: 'excluded', reason: `excluded from pool '${p.name}' by ${x}` };
    return { ...base, state: 'free' };
  }

  const subnetOf = networks.flatMap((n) => n.subnets.map((s) => ({ n, s }))).find(({ s }) => {
    const c = parseCidr(s.cidr);
    return c.family === a.family && inside(a.value, { start: c.network, end: cidrLast(c) });
  });
  if (subnetOf) return { ...info, network: subnetOf.n.name, reason: `in subnet ${subnetOf.s.cidr} of network '${subnetOf.n.name}' but in none of its pools` };
  return { ...info, reason: 'in no network\'s subnet and no pool' };
}

function networkRole(n: Network, family: 4 | 6, value: bigint): Pick<AddressInfo, 'state' | 'reason'> | undefined {
  for (const s of n.subnets) {
    if (s.family !== family) continue;
    if (s.gateway && parseAddress(s.gateway).value === value) return { state: 'gateway', reason: `gateway of subnet ${s.cidr}` };
    const c = parseCidr(s.cidr);
    if (family === 4 && c.prefixLength <= 30) {
      if (value === c.network) return { state: 'network', reason: `network address of subnet ${s.cidr}` };
      if (value === cidrLast(c)) return { state: 'broadcast', reason: `broadcast address of subnet ${s.cidr}` };
    }
    if (family === 6 && c.prefixLength <= 126 && value === c.network) return { state: 'network', reason: `subnet-router anycast address of subnet ${s.cidr}` };
  }
  for (const h of n.hostAddresses) {
    const c = parseCidr(h, 'host-address');
    if (c.family === family && c.address === value) return { state: 'host-address', reason: `the host's own address ${h} on the bridge` };
  }
  return undefined;
}
