import { IpvisorError, invalid } from '../model/errors.js';
import { POOL_PURPOSES, type Assignment, type Family, type Network, type Pool, type PoolEntry, type PoolPurpose } from '../model/types.js';
import { oneOf, validateInt, validateNewName } from '../model/validate.js';
import { cidrLast, formatAddress, formatCidr, parseAddress, parseCidr, prefixSize } from '../ipam/addr.js';
import { rebuildFreeSpace } from '../ipam/allocator.js';
import { overlaps, subtract, totalSize } from '../ipam/intervals.js';
import { assignmentInterval, entryIntervals, usableIntervals } from '../ipam/pool-space.js';
import type { Store, StoreTx, UsageCount } from '../store/store.js';
import { audit, checkVersion, newUuid, now, assignmentName } from './context.js';
import { networkRef, poolRef } from './resolve.js';
import { checkPoolSpaceFree } from './overlap.js';

export interface PoolInput {
  name: string;
  network: string;
  cidrs?: string[];
  ranges?: string[];
  exclude?: string[];
  purpose?: string;
  hold?: number | string;
}

export interface PoolChanges {
  name?: string;
  addCidrs?: string[];
  addRanges?: string[];
  removeEntries?: string[];
  exclude?: string[];
  include?: string[];
  hold?: number | string;
  ifMatch?: string;
}

export function parseCidrEntry(text: string, field = 'cidr'): PoolEntry & { family: Family } {
  const c = parseCidr(text, field, { strict: true });
  return { text: formatCidr(c.family, c.network, c.prefixLength), first: formatAddress(c.family, c.network), last: formatAddress(c.family, cidrLast(c)), family: c.family };
}

export function parseRangeEntry(text: string, field = 'range'): PoolEntry & { family: Family } {
  const parts = text.split('-');
  if (parts.length !== 2) throw invalid(field, `'${text}' is not a range (expected FIRST-LAST)`);
  const a = parseAddress(parts[0].trim(), field);
  const b = parseAddress(parts[1].trim(), field);
  if (a.family !== b.family) throw invalid(field, `'${text}' mixes IPv4 and IPv6`);
  if (a.value > b.value) throw invalid(field, `'${text}': first address is after last address`);
  const first = formatAddress(a.family, a.value), last = formatAddress(b.family, b.value);
  return { text: `${first}-${last}`, first, last, family: a.family };
}

function parseExclusion(text: string, family: Family): string {
  const c = parseCidr(text, 'exclude', { allowBare: true });
  if (c.family !== family) throw invalid('exclude', `${text} is IPv${c.family} but the pool is IPv${family}`);
  const max = family === 4 ? 32 : 128;
  if (c.prefixLength === max) return formatAddress(c.family, c.address);
  if (c.network !== c.address) throw invalid('exclude', `'${text}' is not a canonical CIDR (host bits set)`);
  return formatCidr(c.family, c.network, c.prefixLength);
}

function checkEntries(entries: Array<PoolEntry & { family?: Family }>, family: Family, purpose: PoolPurpose, network: Network): void {
  if (entries.length === 0) throw invalid('cidr', 'a pool needs at least one --cidr or --range');
  const ivs = entryIntervals({ entries });
  for (let i = 0; i < ivs.length; i++) {
    for (let j = i + 1; j < ivs.length; j++) {
      if (overlaps(ivs[i], ivs[j])) throw new IpvisorError('OVERLAP', `cidr: ${entries[i].text} overlaps ${entries[j].text} in the same pool`, { field: 'cidr' });
    }
  }
  if (purpose === 'vif') {
    const subnets = network.subnets.filter((s) => s.family === family).map((s) => parseCidr(s.cidr));
    if (subnets.length === 0) throw invalid('cidr', `network '${network.name}' has no IPv${family} subnet; a vif pool must lie inside one (add --subnet, or use --purpose routed)`);
    entries.forEach((e, i) => {
      const iv = ivs[i];
      if (!subnets.some((c) => iv.start >= c.network && iv.end <= cidrLast(c))) {
        throw invalid(e.text.includes('/') ? 'cidr' : 'range', `${e.text} is outside the subnets of network '${network.name}' (${network.subnets.filter((s) => s.family === family).map((s) => s.cidr).join(', ')})`);
      }
    });
  }
}

export async function createPool(store: Store, input: PoolInput, actor: string): Promise<Pool> {
  const name = validateNewName(input.name, 'name', 'pool');
  const purpose = input.purpose !== undefined ? oneOf<PoolPurpose>(input.purpose, POOL_PURPOSES, 'purpose') : 'vif';
  const holdSeconds = input.hold !== undefined ? validateInt(input.hold, 'hold', 0, 31_536_000) : 0;
  const entries = [...(input.cidrs ?? []).map((c) => parseCidrEntry(c)), ...(input.ranges ?? []).map((r) => parseRangeEntry(r))];
  if (entries.length === 0) throw invalid('cidr', 'a pool needs at least one --cidr or --range');
  const family = entries[0].family;
  const other = entries.find((e) => e.family !== family);
  if (other) throw invalid(other.text.includes('/') ? 'cidr' : 'range', `${other.text} is IPv${other.family} but ${entries[0].text} is IPv${family}; a pool holds one family`);
  const exclusions = (input.exclude ?? []).map((x) => parseExclusion(x, family));
  return store.transaction(async (tx) => {
    const network = await networkRef(tx, input.network);
    if (await tx.findPoolByName(name)) throw new IpvisorError('ALREADY_EXISTS', `name: a pool named '${name}' already exists`, { field: 'name' });
    checkEntries(entries, family, purpose, network);
    const t = now();
    const pool: Pool = { uuid: newUuid(), name, networkUuid: network.uuid, family, purpose, entries: entries.map(({ text, first, last }) => ({ text, first, last })), exclusions, holdSeconds, createdAt: t, updatedAt: t };
    await checkPoolSpaceFree(tx, pool);
    if (subtract(usableIntervals(pool, network), []).length === 0) throw invalid('cidr', 'the pool would have no usable address (everything is excluded or reserved)');
    await tx.insertPool(pool);
    await rebuildFreeSpace(tx, pool, network);
    await audit(tx, { actor, action: 'create', kind: 'pool', uuid: pool.uuid, name: pool.name, after: pool });
    return pool;
  }, { write: true });
}

export async function setPool(store: Store, ref: string, ch: PoolChanges, actor: string): Promise<Pool> {
  return store.transaction(async (tx) => {
    const before = await poolRef(tx, ref);
    checkVersion(before, ch.ifMatch, 'pool');
    const network = (await tx.getNetwork(before.networkUuid))!;
    const name = ch.name !== undefined && ch.name !== before.name ? validateNewName(ch.name, 'name', 'pool') : before.name;
    if (name !== before.name && (await tx.findPoolByName(name))) throw new IpvisorError('ALREADY_EXISTS', `name: a pool named '${name}' already exists`, { field: 'name' });
    const added = [...(ch.addCidrs ?? []).map((c) => parseCidrEntry(c, 'add-cidr')), ...(ch.addRanges ?? []).map((r) => parseRangeEntry(r, 'add-range'))];
    for (const e of added) if (e.family !== before.family) throw invalid(e.text.includes('/') ? 'add-cidr' : 'add-range', `${e.text} is IPv${e.family} but the pool is IPv${before.family}`);
    let entries: PoolEntry[] = [...before.entries, ...added.map(({ text, first, last }) => ({ text, first, last }))];
    for (const r of ch.removeEntries ?? []) {
      const canon = r.includes('/') ? parseCidrEntry(r, 'remove').text : parseRangeEntry(r, 'remove').text;
      if (!entries.some((e) => e.text === canon)) throw new IpvisorError('NOT_FOUND', `remove: ${r} is not a range or CIDR of pool '${before.name}'`, { field: 'remove' });
      entries = entries.filter((e) => e.text !== canon);
    }
    let exclusions = [...before.exclusions];
    for (const x of ch.exclude ?? []) { const c = parseExclusion(x, before.family); if (!exclusions.includes(c)) exclusions.push(c); }
    for (const x of ch.include ?? []) {
      const c = parseExclusion(x, before.family);
      if (!exclusions.includes(c)) throw new IpvisorError('NOT_FOUND', `include: ${x} is not an exclusion of pool '${before.name}'`, { field: 'include' });
      exclusions = exclusions.filter((e) => e !== c);
    }
    const holdSeconds = ch.hold !== undefined ? validateInt(ch.hold, 'hold', 0, 31_536_000) : before.holdSeconds;
    const after: Pool = { ...before, name, entries, exclusions, holdSeconds, updatedAt: now() };
    checkEntries(entries, before.family, before.purpose, network);
    await checkPoolSpaceFree(tx, after);
    // Every assignment must stay inside what the pool can hand out.
    const usable = usableIntervals(after, network);
    for (const a of await tx.listAssignments({ poolUuid: before.uuid })) {
      const iv = assignmentInterval(a);
      if (subtract([iv], usable).length) {
        throw new IpvisorError('IN_USE', `pool: ${a.prefixLength === (a.family === 4 ? 32 : 128) ? a.address : `${a.address}/${a.prefixLength}`} is ${a.kind === 'reserved' ? 'reserved' : 'assigned'} and would fall outside the pool or into an exclusion; release it first`, { field: 'pool' });
      }
    }
    await tx.updatePool(after);
    await rebuildFreeSpace(tx, after, network);
    await audit(tx, { actor, action: 'set', kind: 'pool', uuid: after.uuid, name: after.name, before, after });
    return after;
  }, { write: true });
}

export async function deletePool(store: Store, ref: string, opts: { force?: boolean; ifMatch?: string }, actor: string): Promise<Pool> {
  return store.transaction(async (tx) => {
    const pool = await poolRef(tx, ref);
    checkVersion(pool, opts.ifMatch, 'pool');
    const assignments = await tx.listAssignments({ poolUuid: pool.uuid });
    if (assignments.length && !opts.force) {
      throw new IpvisorError('IN_USE', `pool: '${pool.name}' still has ${assignments.length} assignment(s) (${assignments.slice(0, 5).map((a) => a.address).join(', ')}${assignments.length > 5 ? ', ...' : ''}); use --force to release them and delete the pool`, { field: 'pool', details: { assignments: assignments.map((a) => a.address) } });
    }
    for (const a of assignments) {
      await tx.deleteRequestsFor(a.uuid);
      await tx.deleteAssignment(a.uuid);
      await audit(tx, { actor, action: 'release', kind: 'assignment', uuid: a.uuid, name: assignmentName(a), before: a });
    }
    await tx.deletePool(pool.uuid);
    await audit(tx, { actor, action: 'delete', kind: 'pool', uuid: pool.uuid, name: pool.name, before: pool });
    return pool;
  }, { write: true });
}

export interface PoolUsage {
  /** Decimal strings: IPv6 pools exceed 2^53. */
  total: string;
  assigned: string;
  reserved: string;
  routed: string;
  held: string;
  free: string;
  exclusions: string;
}

/** Usage from the pool's configuration, counts and holds: independent of the pool's size. */
/** `counts`: the store's assignment counts (UsageStore.countUsage) when the caller has them for
 * several pools at once (a pool list); else this pool's are counted in SQL. Never a listing. */
export async function poolUsage(tx: StoreTx, pool: Pool, network: Network, counts?: UsageCount[]): Promise<PoolUsage> {
  const raw = totalSize(entryIntervals(pool));
  const usable = totalSize(usableIntervals(pool, network));
  let assigned = 0n, reserved = 0n, routed = 0n;
  for (const c of counts ?? await tx.countUsage([pool.uuid])) {
    if (c.poolUuid !== pool.uuid) continue;
    const size = prefixSize(c.family as Family, c.prefixLength) * BigInt(c.count);
    if (c.kind === 'reserved') reserved += size;
    else if (c.kind === 'routed') routed += size;
    else assigned += size;
  }
  const held = (await tx.listHolds(pool.uuid)).reduce((s, h) => s + (h.end - h.start + 1n), 0n);
  return {
    total: usable.toString(),
    assigned: assigned.toString(),
    reserved: reserved.toString(),
    routed: routed.toString(),
    held: held.toString(),
    free: (usable - assigned - reserved - routed - held).toString(),
    exclusions: (raw - usable).toString(),
  };
}
