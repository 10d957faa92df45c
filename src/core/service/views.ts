// Read models every front end shows (CLI tables and JSON, the HTTP API): objects with the names of
// what they point at, effective locking, usage. A Scope narrows every list to what a tenant may see.
import { effectiveLocking, lockingReason } from '../model/locking.js';
import { IpvisorError } from '../model/errors.js';
import type { Assignment, AuditEvent, Network, Pool, Vif, Vm } from '../model/types.js';
import { formatAddress, parseCidr } from '../ipam/addr.js';
import { assignmentsCovering, describeAddress, type AddressInfo } from './address-info.js';
import type { EventQuery, StoreTx, VifAddress } from '../store/store.js';
import { poolUsage, type PoolUsage } from './pools.js';
import { findNetwork, findVm, networkRef, poolRef, vmRef } from './resolve.js';
import { type Scope, UNSCOPED, visiblePoolUuids, visibleVifUuids, visibleVmUuids } from './tenants.js';
import { notFound } from '../model/errors.js';

export function formatAssignment(a: Pick<Assignment, 'address' | 'prefixLength' | 'family'>): string {
  return a.prefixLength === (a.family === 4 ? 32 : 128) ? a.address : `${a.address}/${a.prefixLength}`;
}

export interface VifView extends Vif {
  vm: string;
  network: string;
  effectiveLocking: string;
  /** Why: explicit, the network's default, or locked because the VIF holds addresses. */
  lockingReason: string;
  addresses: Array<{ address: string; kind: string }>;
}

export async function vifViews(tx: StoreTx, vifs: Vif[]): Promise<VifView[]> {
  const nets = new Map<string, Network>((await tx.listNetworks()).map((n) => [n.uuid, n]));
  const vms = new Map<string, Vm>((await tx.listVms()).map((v) => [v.uuid, v]));
  // Grouped once: a filter per VIF was O(VIFs x addresses), 1,000 x 32,768 for a list of every VIF.
  // From the columns (listVifAddresses): 32,768 addresses of 1,000 VIFs parse no document.
  const byVif = new Map<string, VifAddress[]>();
  for (const a of await tx.listVifAddresses(vifs.map((v) => v.uuid))) {
    const list = byVif.get(a.vifUuid);
    if (list) list.push(a);
    else byVif.set(a.vifUuid, [a]);
  }
  return vifs.map((v) => {
    const mine = byVif.get(v.uuid) ?? [];
    const net = nets.get(v.networkUuid)!;
    return {
      ...v,
      boundAt: v.boundAt ?? null,
      vm: vms.get(v.vmUuid)?.name ?? v.vmUuid,
      network: net.name,
      effectiveLocking: effectiveLocking(v, net, mine.length),
      lockingReason: lockingReason(v, net, mine.length),
      addresses: mine.map((a) => ({ address: formatAssignment(a), kind: a.kind })),
    };
  });
}

export interface AssignmentView extends Assignment {
  cidr: string;
  network: string;
  pool: string;
  vif: string | null;
}

export async function assignmentViews(tx: StoreTx, list: Assignment[]): Promise<AssignmentView[]> {
  const nets = new Map((await tx.listNetworks()).map((n) => [n.uuid, n.name]));
  const pools = new Map((await tx.listPools()).map((p) => [p.uuid, p.name]));
  const vifs = new Map((await tx.listVifs()).map((v) => [v.uuid, v]));
  const vms = new Map((await tx.listVms()).map((v) => [v.uuid, v.name]));
  return list.map((a) => {
    const vif = a.vifUuid ? vifs.get(a.vifUuid) : undefined;
    return { ...a, cidr: formatAssignment(a), network: nets.get(a.networkUuid) ?? a.networkUuid, pool: pools.get(a.poolUuid) ?? a.poolUuid, vif: vif ? `${vms.get(vif.vmUuid)}:${vif.device}` : null };
  });
}

// ---- VMs -----------------------------------------------------------------------------------------

export async function listVms(tx: StoreTx, scope: Scope = UNSCOPED): Promise<Vm[]> {
  const visible = await visibleVmUuids(tx, scope);
  const all = await tx.listVms();
  return visible ? all.filter((v) => visible.has(v.uuid)) : all;
}

/** A VM the scope may see; another tenant's VM answers exactly as a missing one. */
export async function scopedVm(tx: StoreTx, ref: string, scope: Scope = UNSCOPED, field = 'vm'): Promise<Vm> {
  const vm = await vmRef(tx, ref, field);
  if (scope.tenant !== null && vm.owner !== scope.tenant) throw notFound('vm', ref, field);
  return vm;
}

export async function showVm(tx: StoreTx, ref: string, scope: Scope = UNSCOPED): Promise<Vm & { vifs: VifView[] }> {
  const v = await scopedVm(tx, ref, scope);
  return { ...v, vifs: await vifViews(tx, await tx.listVifs(v.uuid)) };
}

// ---- VIFs ----------------------------------------------------------------------------------------

export async function listVifs(tx: StoreTx, filter: { vm?: string; network?: string; owner?: string } = {}, scope: Scope = UNSCOPED): Promise<VifView[]> {
  let vifs = filter.vm ? await tx.listVifs((await scopedVm(tx, filter.vm, scope)).uuid) : await tx.listVifs();
  if (filter.network) {
    const n = await networkRef(tx, filter.network);
    vifs = vifs.filter((v) => v.networkUuid === n.uuid);
  }
  if (filter.owner !== undefined) {
    const owned = new Set((await tx.listVms()).filter((vm) => vm.owner === filter.owner).map((vm) => vm.uuid));
    vifs = vifs.filter((v) => owned.has(v.vmUuid));
  }
  const visible = await visibleVifUuids(tx, scope);
  if (visible) vifs = vifs.filter((v) => visible.has(v.uuid));
  return vifViews(tx, vifs);
}

/** "VM:DEVICE" or a VIF UUID, within the scope (another tenant's VIF answers as a missing VM). */
export async function scopedVif(tx: StoreTx, ref: string, scope: Scope = UNSCOPED, field = 'vif'): Promise<{ vif: Vif; vm: Vm }> {
  const { vifRef } = await import('./resolve.js');
  const r = await vifRef(tx, ref, field);
  if (scope.tenant !== null && r.vm.owner !== scope.tenant) {
    const i = ref.lastIndexOf(':');
    throw notFound('vm', i > 0 ? ref.slice(0, i) : ref, field);
  }
  return r;
}

// ---- networks and pools --------------------------------------------------------------------------

export interface PoolView extends Pool {
  network: string;
  usage: PoolUsage;
}

export async function listPools(tx: StoreTx, filter: { network?: string } = {}, scope: Scope = UNSCOPED): Promise<PoolView[]> {
  const networks = new Map((await tx.listNetworks()).map((n) => [n.uuid, n]));
  let pools = await tx.listPools();
  if (filter.network) {
    const n = await networkRef(tx, filter.network);
    pools = pools.filter((p) => p.networkUuid === n.uuid);
  }
  const visible = await visiblePoolUuids(tx, scope);
  if (visible) pools = pools.filter((p) => visible.has(p.uuid));
  // Counted in SQL for every pool at once (one GROUP BY), never listed.
  const counts = await tx.countUsage(filter.network || visible ? pools.map((p) => p.uuid) : undefined);
  return Promise.all(pools.map(async (p) => ({ ...p, network: networks.get(p.networkUuid)!.name, usage: await poolUsage(tx, p, networks.get(p.networkUuid)!, counts) })));
}

export async function scopedPool(tx: StoreTx, ref: string, scope: Scope = UNSCOPED, field = 'pool'): Promise<Pool> {
  const p = await poolRef(tx, ref, field);
  const visible = await visiblePoolUuids(tx, scope);
  if (visible && !visible.has(p.uuid)) throw notFound('pool', ref, field);
  return p;
}

export async function showPool(tx: StoreTx, ref: string, scope: Scope = UNSCOPED): Promise<PoolView & { holds: Array<{ start: string; end: string; until: string }> }> {
  const p = await scopedPool(tx, ref, scope);
  const n = (await tx.getNetwork(p.networkUuid))!;
  const usage = await poolUsage(tx, p, n);
  const holds = await tx.listHolds(p.uuid);
  return { ...p, network: n.name, usage, holds: holds.map((h) => ({ start: h.start.toString(), end: h.end.toString(), until: h.until })) };
}

// ---- addresses -----------------------------------------------------------------------------------

export interface AssignmentFilter {
  network?: string;
  pool?: string;
  vm?: string;
  vif?: string;
  family?: number;
}

export async function listAssignments(tx: StoreTx, f: AssignmentFilter = {}, scope: Scope = UNSCOPED): Promise<AssignmentView[]> {
  let list = await tx.listAssignments({
    networkUuid: f.network ? (await networkRef(tx, f.network)).uuid : undefined,
    poolUuid: f.pool ? (await scopedPool(tx, f.pool, scope)).uuid : undefined,
  });
  if (f.vm) {
    const vm = await scopedVm(tx, f.vm, scope);
    const vifIds = new Set((await tx.listVifs(vm.uuid)).map((v) => v.uuid));
    list = list.filter((a) => a.vifUuid && vifIds.has(a.vifUuid));
  }
  if (f.vif) {
    const { vif } = await scopedVif(tx, f.vif, scope);
    list = list.filter((a) => a.vifUuid === vif.uuid);
  }
  if (f.family !== undefined) list = list.filter((a) => a.family === f.family);
  const visible = await visibleVifUuids(tx, scope);
  if (visible) list = list.filter((a) => a.vifUuid !== null && visible.has(a.vifUuid));
  return assignmentViews(tx, list);
}

/** What an address is (describeAddress, as `ip show` prints it). A tenant learns only about
 * addresses its own VIFs hold (or prefixes containing them); anything else answers NOT_FOUND, as an
 * address in no pool does. */
export async function showAddress(tx: StoreTx, address: string, scope: Scope = UNSCOPED): Promise<AddressInfo> {
  const c = parseCidr(address, 'address', { allowBare: true });
  const text = formatAddress(c.family, c.address);
  const visible = await visibleVifUuids(tx, scope);
  if (visible) {
    const mine = (await assignmentsCovering(tx, c.family, c.address)).some((a) => a.vifUuid !== null && visible.has(a.vifUuid));
    if (!mine) throw new IpvisorError('NOT_FOUND', `address: ${text} is not assigned to any of your VIFs`, { field: 'address' });
  }
  return describeAddress(tx, text);
}

// ---- events --------------------------------------------------------------------------------------

/** "2026-11-23T10:00:00Z", "2026-11-23", or relative: "30m", "2h", "7d". */
export function parseSince(text: string, nowMs = Date.now()): string {
  const rel = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (rel) {
    const mult = { s: 1, m: 60, h: 3600, d: 86400 }[rel[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(nowMs - Number(rel[1]) * mult * 1000).toISOString();
  }
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new IpvisorError('VALIDATION', `since: '${text}' is not a time (ISO 8601, or relative like 30m, 2h, 7d)`, { field: 'since' });
  return new Date(t).toISOString();
}

function field(e: AuditEvent, key: string): unknown {
  const pick = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined);
  return pick(e.after) ?? pick(e.before);
}

/** Events about an object and what hangs off it: a VM's VIFs and their addresses; a network's pools,
 * VIFs and addresses; a pool's addresses. */
export function relatedTo(all: AuditEvent[], obj: { kind: 'vm' | 'network' | 'pool'; uuid: string; name: string }): AuditEvent[] {
  const vifUuids = new Set<string>();
  if (obj.kind === 'vm') {
    for (const e of all) if (e.objectKind === 'vif' && (field(e, 'vmUuid') === obj.uuid) && e.objectUuid) vifUuids.add(e.objectUuid);
  }
  return all.filter((e) => {
    if (e.objectUuid === obj.uuid) return true;
    if (obj.kind === 'vm') return (e.objectKind === 'vif' && !!e.objectUuid && vifUuids.has(e.objectUuid)) || (e.objectKind === 'assignment' && vifUuids.has(field(e, 'vifUuid') as string));
    if (obj.kind === 'network') return field(e, 'networkUuid') === obj.uuid;
    return e.objectKind === 'assignment' && field(e, 'poolUuid') === obj.uuid;
  });
}

/** Whether a tenant may see an event: about one of its VMs, their VIFs or their addresses (as they
 * are now: a VM given to another tenant takes its history along). */
export async function tenantEventFilter(tx: StoreTx, scope: Scope): Promise<((e: AuditEvent) => boolean) | undefined> {
  const vms = await visibleVmUuids(tx, scope);
  if (!vms) return undefined;
  const vifs = await visibleVifUuids(tx, scope);
  return (e) => {
    if (e.objectKind === 'vm') return !!e.objectUuid && vms.has(e.objectUuid);
    if (e.objectKind === 'vif') return (!!e.objectUuid && vifs!.has(e.objectUuid)) || vms.has(field(e, 'vmUuid') as string);
    if (e.objectKind === 'assignment') return vifs!.has(field(e, 'vifUuid') as string);
    return false;
  };
}

export interface EventFilter {
  since?: string;
  object?: string;
  /** Only events by this actor (token:NAME, user:NAME, cli, ...). */
  actor?: string;
  afterId?: number;
  limit?: number;
}

/** Reads events in the given order a page at a time, keeping those `keep` accepts, until `want`
 * are kept or the log ends: the newest 200 of 35,000 read one page, not the whole log. */
async function scanEvents(tx: StoreTx, q: EventQuery, keep: ((e: AuditEvent) => boolean) | undefined, want: number, order: 'asc' | 'desc'): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  if (want <= 0) return out;
  // Unfiltered, one page is exactly enough; a tenant's filter may drop most rows, so read more.
  const batch = keep ? Math.min(Math.max(want * 4, 500), 5000) : want;
  let cursor: number | undefined;
  for (;;) {
    const page = await tx.listEvents({ ...q, order, limit: batch, ...(cursor === undefined ? {} : order === 'desc' ? { beforeId: cursor } : { afterId: cursor }) });
    for (const e of page) {
      if (keep && !keep(e)) continue;
      out.push(e);
      if (out.length >= want) return out;
    }
    if (page.length < batch) return out;
    cursor = page[page.length - 1].id;
  }
}

/** The store query for a filter: an object's own events and, when it names a VM, network or pool
 * (by name or UUID, renamed or not), those of what hangs off it (EventQuery.related). */
async function eventQuery(tx: StoreTx, f: EventFilter): Promise<EventQuery> {
  const q: EventQuery = { since: f.since ? parseSince(f.since) : undefined, object: f.object, actor: f.actor, afterId: f.afterId };
  if (f.object) {
    const vm = await findVm(tx, f.object);
    const net = vm ? undefined : await findNetwork(tx, f.object);
    const pool = vm || net ? undefined : await tx.findPoolByName(f.object);
    if (vm) q.related = { kind: 'vm', uuid: vm.uuid };
    else if (net) q.related = { kind: 'network', uuid: net.uuid };
    else if (pool) q.related = { kind: 'pool', uuid: pool.uuid };
  }
  return q;
}

/** The audit log as the CLI's `events` and the audit page show it, oldest first; `limit` keeps the
 * newest (read newest first from the store: ORDER BY id DESC LIMIT, the filters in SQL). */
export async function listEvents(tx: StoreTx, f: EventFilter = {}, scope: Scope = UNSCOPED): Promise<AuditEvent[]> {
  const q = await eventQuery(tx, f);
  const visible = await tenantEventFilter(tx, scope);
  if (f.limit !== undefined) return (await scanEvents(tx, q, visible, f.limit, 'desc')).reverse();
  const events = await tx.listEvents(q);
  return visible ? events.filter(visible) : events;
}

/** The first `limit` events after `afterId` (oldest first) and whether more follow: a page of the
 * API's cursor, read a page at a time from the store rather than the whole log. */
export async function eventsPage(tx: StoreTx, f: EventFilter & { limit: number }, scope: Scope = UNSCOPED): Promise<{ items: AuditEvent[]; more: boolean }> {
  const events = await scanEvents(tx, await eventQuery(tx, f), await tenantEventFilter(tx, scope), f.limit + 1, 'asc');
  return { items: events.slice(0, f.limit), more: events.length > f.limit };
}

// ---- networks ------------------------------------------------------------------------------------

export interface NetworkPoolUsage extends PoolUsage {
  pool: string;
  family: number;
  purpose: string;
}

export async function showNetwork(tx: StoreTx, ref: string): Promise<Network & { pools: NetworkPoolUsage[]; vifCount: number; assignmentCount: number }> {
  const n = await networkRef(tx, ref);
  const pools = await tx.listPools(n.uuid);
  // An assignment's network is its pool's (a pool never changes network): counting the network's
  // pools counts the network's assignments.
  const counts = await tx.countUsage(pools.map((p) => p.uuid));
  const usage = await Promise.all(pools.map(async (p) => ({ pool: p.name, family: p.family, purpose: p.purpose, ...(await poolUsage(tx, p, n, counts)) })));
  const vifs = (await tx.listVifs()).filter((v) => v.networkUuid === n.uuid);
  return { ...n, pools: usage, vifCount: vifs.length, assignmentCount: counts.reduce((s, c) => s + c.count, 0) };
}
