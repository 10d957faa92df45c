// `ipvisor import routed-ips FILE`: libvirt-nethook-helper's file ("<ip> <libvirt network name>" per
// line, '#' comments) turned into routed addresses in ipvisor's store, so that the route to the
// bridge and the forward accepts come from the host plan (and so survive libvirtd restarts and
// show up in `plan`) instead of from a hook script. An optional third column VM[:DEVICE] binds the
// address to that VIF (a routed assignment the VIF may also send from, which locking needs); a bare
// VM means its first VIF on that network. The network is a libvirt network's name or any ipvisor
// network (bridge, xapi, libvirt) by name or UUID.
import { IpvisorError, invalid } from '../../core/model/errors.js';
import type { Assignment, Network, Pool, Vif } from '../../core/model/types.js';
import { effectiveLocking } from '../../core/model/locking.js';
import { isUuid } from '../../core/model/validate.js';
import type { Store } from '../../core/store/store.js';
import { BITS, formatAddress, parseCidr } from '../../core/ipam/addr.js';
import { entryIntervals } from '../../core/ipam/pool-space.js';
import { allocate, release, reserve } from '../../core/service/ip.js';
import { createPool, setPool } from '../../core/service/pools.js';
import { findNetwork, vifRef, vmRef } from '../../core/service/resolve.js';
import { findStoreNetwork } from '../../core/service/libvirt-facts.js';

export interface RoutedLine {
  line: number;
  cidr: string;
  family: 4 | 6;
  network: string;
  vif: string | null;
}

/** Pure: parses the file; errors name the line. */
export function parseRoutedIps(text: string, source = 'file'): RoutedLine[] {
  const out: RoutedLine[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const body = lines[i].replace(/#.*$/, '').trim();
    if (!body) continue;
    const parts = body.split(/\s+/);
    const field = `${source}:${i + 1}`;
    if (parts.length < 2 || parts.length > 3) throw invalid(field, `expected '<ip> <network> [VM[:DEVICE]]', got '${body}'`);
    const c = parseCidr(parts[0], field, { allowBare: true });
    if (c.address !== c.network) throw invalid(field, `'${parts[0]}' has host bits set`);
    out.push({ line: i + 1, cidr: `${formatAddress(c.family, c.network)}/${c.prefixLength}`, family: c.family, network: parts[1], vif: parts[2] ?? null });
  }
  return out;
}

export interface ImportResult {
  imported: Array<{ cidr: string; network: string; vif: string | null; action: 'assigned' | 'reserved' | 'exists' }>;
  /** Addresses routed to a network whose VIFs are locked but bound to none of them. */
  warnings: string[];
}

/** The VIF a third column names: VM:DEVICE, a VIF UUID, or a bare VM (its first VIF on `n`). */
async function lineVif(store: Store, ref: string, n: Network, field: string): Promise<{ vif: Vif; label: string }> {
  const i = ref.lastIndexOf(':');
  if (isUuid(ref) || (i > 0 && /^\d+$/.test(ref.slice(i + 1)))) {
    const { vif, vm } = await vifRef(store, ref, field);
    return { vif, label: `${vm.name}:${vif.device}` };
  }
  const vm = await vmRef(store, ref, field);
  const vif = (await store.listVifs(vm.uuid)).filter((v) => v.networkUuid === n.uuid).sort((a, b) => a.device - b.device)[0];
  if (!vif) throw invalid(field, `VM '${vm.name}' has no VIF on network '${n.name}'`);
  return { vif, label: `${vm.name}:${vif.device}` };
}

async function findImportNetwork(store: Store, name: string): Promise<Network | undefined> {
  return (await findStoreNetwork(store, { name })) ?? (await findNetwork(store, name));
}

function poolContains(p: Pool, start: bigint, end: bigint): boolean {
  return entryIntervals(p).some((iv) => iv.start <= start && end <= iv.end);
}

export async function importRoutedIps(store: Store, text: string, source: string, actor: string): Promise<ImportResult> {
  const lines = parseRoutedIps(text, source);
  // Resolve every network before changing anything, so a typo on line 40 changes nothing.
  const nets = new Map<string, Awaited<ReturnType<typeof findStoreNetwork>>>();
  for (const l of lines) {
    if (nets.has(l.network)) continue;
    const n = await findImportNetwork(store, l.network);
    if (!n) throw new IpvisorError('NOT_FOUND', `${source}:${l.line}: no network named '${l.network}' (an ipvisor network, or a libvirt network after 'ipvisor libvirt sync')`, { field: `${source}:${l.line}` });
    nets.set(l.network, n);
  }
  // Same for the VIFs of the third column: a VM typo must not leave the lines before it imported.
  for (const l of lines) {
    if (!l.vif) continue;
    const field = `${source}:${l.line}`;
    const n = nets.get(l.network)!;
    const { vif, label } = await lineVif(store, l.vif, n, field).catch((err: unknown) => {
      throw err instanceof IpvisorError && !err.message.startsWith(`${field}:`) ? new IpvisorError(err.code, `${field}: ${err.message}`, { field, details: err.details }) : err;
    });
    if (vif.networkUuid !== n.uuid) throw invalid(field, `VIF '${l.vif}' is not on network '${n.name}'`);
    l.vif = label; // allocate takes VM:DEVICE
    const existing = await existingAssignment(store, l, n);
    if (existing?.vifUuid && existing.vifUuid !== vif.uuid) throw invalid(field, `${l.cidr} is already assigned to another VIF; release it first`);
  }
  const res: ImportResult = { imported: [], warnings: [] };
  for (const l of lines) {
    try {
      res.imported.push(await importLine(store, l, nets.get(l.network)!, source, actor));
    } catch (err) {
      // Errors name the line; the lines before it stay imported (a re-run skips them).
      const field = `${source}:${l.line}`;
      throw err instanceof IpvisorError ? new IpvisorError(err.code, `${field}: ${err.message}`, { field, details: err.details }) : err;
    }
  }
  // An address routed to the network but bound to no VIF is reachable, yet a VM whose VIF is locked
  // cannot send from it: say so, per address, with the fix.
  for (const l of lines) {
    if (l.vif) continue;
    const n = nets.get(l.network)!;
    const existing = await existingAssignment(store, l, n);
    if (existing?.vifUuid) continue;
    if (!(await networkLocksVifs(store, n))) continue;
    const field = `${source}:${l.line}`;
    res.warnings.push(`${field}: ${l.cidr} is routed to network '${n.name}' but bound to no VIF, and its VIFs are locked: no VM can send from it. Name the VM in a third column (${l.cidr.replace(/\/(32|128)$/, '')} ${l.network} VM[:DEVICE]) or run 'ipvisor ip allocate --vif VM:DEVICE --address ${l.cidr.replace(/\/(32|128)$/, '')}'`);
  }
  return res;
}

/** Whether the network's VIFs are locked: its default is, or any of its VIFs is in effect. */
async function networkLocksVifs(store: Store, n: Network): Promise<boolean> {
  if (n.defaultLocking === 'locked') return true;
  const vifs = (await store.listVifs()).filter((v) => v.networkUuid === n.uuid);
  for (const v of vifs) {
    const held = (await store.listAssignments({ vifUuids: [v.uuid] })).length;
    if (effectiveLocking(v, n, held) === 'locked') return true;
  }
  return false;
}

async function existingAssignment(store: Store, l: RoutedLine, n: Network): Promise<Assignment | undefined> {
  const c = parseCidr(l.cidr);
  return (await store.listAssignments({ networkUuid: n.uuid, address: formatAddress(c.family, c.network) })).find((a: Assignment) => a.prefixLength === c.prefixLength);
}

async function importLine(store: Store, l: RoutedLine, n: Network, source: string, actor: string): Promise<ImportResult['imported'][number]> {
  const c = parseCidr(l.cidr);
  const start = c.network;
  const end = c.network + (1n << BigInt(BITS[c.family] - c.prefixLength)) - 1n;
  const existing = await existingAssignment(store, l, n);
  // A line imported before without a VM that now names one: the reservation becomes that VIF's.
  if (existing && !(l.vif && !existing.vifUuid)) return { cidr: l.cidr, network: n.name, vif: l.vif, action: 'exists' };
  if (existing) await release(store, { address: l.cidr, network: n.uuid }, actor);
  const pools = (await store.listPools(n.uuid)).filter((p) => p.purpose === 'routed' && p.family === c.family);
  let pool = pools.find((p) => poolContains(p, start, end));
  if (!pool) {
    const name = `${n.name}-routed${c.family === 6 ? '6' : ''}`;
    const mine = pools.find((p) => p.name === name);
    pool = mine
      ? await setPool(store, mine.uuid, { addCidrs: [l.cidr] }, actor)
      : await createPool(store, { name, network: n.uuid, cidrs: [l.cidr], purpose: 'routed', hold: 0 }, actor);
  }
  const address = c.prefixLength === BITS[c.family] ? formatAddress(c.family, c.network) : l.cidr;
  if (l.vif) {
    await allocate(store, { vif: l.vif, pool: pool.uuid, address, note: `imported from ${source}` }, actor);
    return { cidr: l.cidr, network: n.name, vif: l.vif, action: 'assigned' };
  }
  await reserve(store, { address, pool: pool.uuid, note: `routed, imported from ${source}` }, actor);
  return { cidr: l.cidr, network: n.name, vif: null, action: 'reserved' };
}
