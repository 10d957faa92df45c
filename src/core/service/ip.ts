// Allocation, reservation and release: every one a single write transaction (BEGIN IMMEDIATE), so
// two processes can never hand out the same address or overlapping prefixes.
import { createHash } from 'node:crypto';
import { IpvisorError, invalid } from '../model/errors.js';
import type { Assignment, AssignmentKind, Family, Network, Pool, Vif } from '../model/types.js';
import { validateInt, validateNote } from '../model/validate.js';
import { BITS, eui64, formatAddress, parseAddress, parseCidr, prefixSize } from '../ipam/addr.js';
import { describeBlock, freeAssignment, reclaimHolds, takeAlignedBlock, takeLowestReclaiming, takeSpecific } from '../ipam/allocator.js';
import { entryIntervals, networkReservedIntervals, exclusionIntervals } from '../ipam/pool-space.js';
import type { Store, StoreTx } from '../store/store.js';
import { audit, newUuid, now, assignmentName } from './context.js';
import { networkRef, poolRef, vifInContextRef, vifLabel } from './resolve.js';
import { enforceTenantQuota, type Scope, UNSCOPED, visibleVifUuids } from './tenants.js';
import { notFound } from '../model/errors.js';
import { allocationFailuresTotal, allocationsTotal } from '../metrics.js';

export interface AllocateInput {
  vif: string;
  pool?: string;
  family?: number | string;
  address?: string;
  prefixLength?: number | string;
  requestId?: string;
  note?: string;
  /** A tenant-scoped request: only the tenant's own VIFs and allowed pools (API). */
  scope?: Scope;
}

export interface AllocationResult {
  assignment: Assignment;
  /** false when an earlier call with the same request id already made it. */
  created: boolean;
}

function fingerprint(input: AllocateInput, vifUuid: string): string {
  const canon = {
    vif: vifUuid,
    pool: input.pool ?? null,
    family: input.family !== undefined ? String(input.family) : null,
    address: input.address ?? null,
    prefixLength: input.prefixLength !== undefined ? String(input.prefixLength) : null,
  };
  return createHash('sha256').update(JSON.stringify(canon)).digest('hex');
}

function inPool(pool: Pool, value: bigint): boolean {
  return entryIntervals(pool).some((iv) => value >= iv.start && value <= iv.end);
}

async function choosePool(tx: StoreTx, network: Network, input: AllocateInput, family: Family | undefined, addressValue: bigint | undefined, wantsPrefix: boolean, named?: Promise<Pool>): Promise<Pool> {
  if (input.pool) {
    const pool = await (named ?? poolRef(tx, input.pool));
    if (pool.networkUuid !== network.uuid) throw invalid('pool', `pool '${pool.name}' belongs to another network than the VIF's ('${network.name}')`);
    if (family && pool.family !== family) throw invalid(input.address ? 'address' : 'family', `pool '${pool.name}' is IPv${pool.family}, not IPv${family}`);
    return pool;
  }
  const pools = await tx.listPools(network.uuid);
  if (addressValue !== undefined) {
    const hit = pools.filter((p) => p.family === family && inPool(p, addressValue));
    if (hit.length === 1) return hit[0];
    throw invalid('address', `${input.address} is not inside any pool of network '${network.name}'`);
  }
  const purpose = wantsPrefix ? 'routed' : 'vif';
  let candidates = pools.filter((p) => p.purpose === purpose);
  if (!family) {
    const families = new Set(candidates.map((p) => p.family));
    if (families.size > 1) throw invalid('family', `network '${network.name}' is dual-stack; say --family 4 or --family 6`);
  } else {
    candidates = candidates.filter((p) => p.family === family);
  }
  if (candidates.length === 1) return candidates[0];
  if (candidates.length === 0) {
    throw invalid('pool', `network '${network.name}' has no ${purpose} pool${family ? ` for IPv${family}` : ''}; create one with 'ipvisor pool create'`);
  }
  throw invalid('pool', `network '${network.name}' has several ${purpose} pools${family ? ` for IPv${family}` : ''} (${candidates.map((p) => p.name).join(', ')}); say --pool`);
}

/** Why an address of the pool is not free, for the error message. */
async function whyTaken(tx: StoreTx, pool: Pool, network: Network, value: bigint, prefixLength: number): Promise<IpvisorError> {
  const text = describeBlock(pool, value, prefixLength);
  const end = value + prefixSize(pool.family, prefixLength) - 1n;
  for (const iv of networkReservedIntervals(network, pool.family)) {
    if (iv.start <= end && value <= iv.end) return invalid('address', `${formatAddress(pool.family, iv.start)} is a gateway, network, broadcast or host address of '${network.name}' and is never handed out`);
  }
  for (const iv of exclusionIntervals(pool)) {
    if (iv.start <= end && value <= iv.end) return invalid('address', `${text} is excluded from pool '${pool.name}'`);
  }
  const holds = await tx.listHolds(pool.uuid);
  const hold = holds.find((h) => h.start <= end && value <= h.end);
  const assigned = (await tx.listAssignments({ poolUuid: pool.uuid })).find((a) => {
    const s = parseAddress(a.address).value;
    return s <= end && value <= s + prefixSize(a.family, a.prefixLength) - 1n;
  });
  if (assigned) {
    let owner = 'a reservation';
    if (assigned.vifUuid) {
      const vif = await tx.getVif(assigned.vifUuid);
      const vm = vif ? await tx.getVm(vif.vmUuid) : undefined;
      owner = vm && vif ? vifLabel(vm, vif) : assigned.vifUuid;
    }
    return new IpvisorError('ADDRESS_TAKEN', `address: ${text} is already taken (${assigned.kind} ${assigned.address}${assigned.prefixLength < BITS[assigned.family] ? '/' + assigned.prefixLength : ''}, ${owner})`, { field: 'address' });
  }
  if (hold) return new IpvisorError('ADDRESS_TAKEN', `address: ${text} was released recently and is held until ${hold.until}`, { field: 'address' });
  return invalid('address', `${text} is not inside pool '${pool.name}'`);
}

/** The VIF's EUI-64 address in the /64 subnet of the network that holds the pool. */
function slaacAddress(network: Network, pool: Pool, mac: string): bigint {
  const first = entryIntervals(pool)[0].start;
  const subnet = network.subnets.map((s) => parseCidr(s.cidr)).find((c) => c.family === 6 && c.prefixLength === 64 && first >= c.network && first <= c.network + (1n << 64n) - 1n);
  if (!subnet) throw invalid('pool', `network '${network.name}' hands out SLAAC addresses but pool '${pool.name}' is not inside a /64 subnet`);
  return subnet.network | eui64(mac);
}

async function primaryKind(tx: StoreTx, vif: Vif, family: Family): Promise<AssignmentKind> {
  return (await tx.vifHoldsAddress(vif.uuid, family)) ? 'additional' : 'primary';
}

/** Counted in ipvisor_allocations_total / ipvisor_allocation_failures_total (only counting: the
 * allocation itself is allocateUncounted). */
export async function allocate(store: Store, input: AllocateInput, actor: string): Promise<AllocationResult> {
  const chosen: { pool?: string } = {};
  try {
    const res = await allocateUncounted(store, input, actor, chosen);
    if (res.created) allocationsTotal.inc({ pool: chosen.pool ?? '', kind: res.assignment.kind });
    return res;
  } catch (err) {
    allocationFailuresTotal.inc({ pool: chosen.pool ?? '', reason: err instanceof IpvisorError ? err.code : 'INTERNAL' });
    throw err;
  }
}

async function allocateUncounted(store: Store, input: AllocateInput, actor: string, chosen: { pool?: string }): Promise<AllocationResult> {
  const family = input.family !== undefined ? (validateInt(input.family, 'family', 4, 6) as Family) : undefined;
  if (family !== undefined && family !== 4 && family !== 6) throw invalid('family', `${input.family} is not 4 or 6`);
  const addr = input.address !== undefined ? parseCidr(input.address, 'address', { allowBare: true }) : undefined;
  if (addr && family && addr.family !== family) throw invalid('address', `${input.address} is IPv${addr.family} but --family is ${family}`);
  if (input.requestId !== undefined && (input.requestId.length === 0 || input.requestId.length > 200)) throw invalid('request-id', 'must be 1-200 characters');
  if (input.requestId !== undefined) validateNote(input.requestId, 'request-id', 200);
  if (input.note !== undefined) validateNote(input.note, 'note');
  let prefixLength = input.prefixLength !== undefined ? validateInt(input.prefixLength, 'prefix-length', 0, 128) : undefined;
  if (addr && addr.prefixLength !== BITS[addr.family]) {
    if (prefixLength !== undefined && prefixLength !== addr.prefixLength) throw invalid('prefix-length', `conflicts with ${input.address}`);
    if (addr.network !== addr.address) throw invalid('address', `'${input.address}' is not a canonical prefix (host bits set)`);
    prefixLength = addr.prefixLength;
  }

  return store.transaction(async (tx) => {
    // The VIF (with its VM and network) and a named pool are read together: on PostgreSQL both
    // statements go out at once (the connection pipelines). The pool's error, if any, is thrown
    // where choosePool would have thrown it.
    const named = input.pool ? poolRef(tx, input.pool) : undefined;
    named?.catch(() => undefined);
    const { vif, vm, network } = await vifInContextRef(tx, input.vif);
    const scope = input.scope ?? UNSCOPED;
    // Another tenant's VIF answers exactly as a missing VM does.
    if (scope.tenant !== null && vm.owner !== scope.tenant) throw notFound('vm', input.vif.includes(':') ? input.vif.slice(0, input.vif.lastIndexOf(':')) : input.vif, 'vif');
    if (input.requestId !== undefined) {
      const prior = await tx.getRequest(input.requestId);
      if (prior) {
        if (prior.fingerprint !== fingerprint(input, vif.uuid)) {
          throw new IpvisorError('IDEMPOTENCY_MISMATCH', `request-id: '${input.requestId}' was already used with different arguments`, { field: 'request-id' });
        }
        const a = await tx.getAssignment(prior.assignmentUuid);
        if (a) return { assignment: a, created: false };
        // The earlier assignment was released since; the key is spent.
        throw new IpvisorError('IDEMPOTENCY_MISMATCH', `request-id: '${input.requestId}' was used for an assignment that has since been released`, { field: 'request-id' });
      }
    }
    const fam = (addr?.family ?? family) as Family | undefined;
    const pool = await choosePool(tx, network, input, fam, addr?.network, prefixLength !== undefined && (!fam || prefixLength < BITS[fam]), named);
    chosen.pool = pool.name;
    const max = BITS[pool.family];
    const len = prefixLength ?? max;
    if (len > max) throw invalid('prefix-length', `/${len} is impossible for IPv${pool.family}`);
    if (len < max && pool.purpose !== 'routed') throw invalid('prefix-length', `pool '${pool.name}' hands out single addresses; prefixes come from a routed pool (--purpose routed)`);
    const size = prefixSize(pool.family, len);
    const largest = entryIntervals(pool).reduce((m, iv) => (iv.end - iv.start + 1n > m ? iv.end - iv.start + 1n : m), 0n);
    if (size > largest) throw invalid('prefix-length', `a /${len} does not fit in pool '${pool.name}' (its largest range holds ${largest} addresses)`);
    await enforceTenantQuota(tx, vm, pool, len, scope, input.pool);

    const nowIso = new Date().toISOString();
    // Expired holds go back to the free space first (in the common case the store does that and
    // takes the lowest address in one call: takeLowestReclaiming).
    const lowest = !addr && len === max && !(pool.family === 6 && pool.purpose === 'vif' && network.extra.ipv6Slaac === true);
    if (!lowest) await reclaimHolds(tx, pool, nowIso);
    let start: bigint;
    let kind: AssignmentKind | undefined = pool.purpose === 'routed' ? 'routed' : undefined;
    if (addr) {
      if (addr.network % size !== 0n) throw invalid('address', `${input.address} is not aligned on a /${len}`);
      if (!(await takeSpecific(tx, pool, addr.network, size))) throw await whyTaken(tx, pool, network, addr.network, len);
      start = addr.network;
    } else if (len === max && pool.family === 6 && pool.purpose === 'vif' && network.extra.ipv6Slaac === true) {
      // Router-advertisement networks: the guest configures its EUI-64 SLAAC address by itself, so
      // that is the address to assign (and lock to); libvirt's IPv6 <host> cannot key on a MAC.
      start = slaacAddress(network, pool, vif.mac);
      if (!(await takeSpecific(tx, pool, start, 1n))) throw await whyTaken(tx, pool, network, start, max);
    } else if (lowest) {
      const taken = await takeLowestReclaiming(tx, pool, nowIso, kind ? undefined : { vifUuid: vif.uuid, family: pool.family });
      start = taken.start;
      kind ??= taken.holderHasAddress ? 'additional' : 'primary';
    } else {
      const got = await takeAlignedBlock(tx, pool, size);
      if (got === undefined) throw new IpvisorError('POOL_EXHAUSTED', `pool '${pool.name}' has no free aligned /${len}`, { field: 'pool' });
      start = got;
    }
    kind ??= await primaryKind(tx, vif, pool.family);
    const assignment: Assignment = {
      uuid: newUuid(), networkUuid: network.uuid, poolUuid: pool.uuid, vifUuid: vif.uuid, family: pool.family,
      address: formatAddress(pool.family, start), prefixLength: len, kind, note: input.note ?? null,
      requestId: input.requestId ?? null, createdAt: now(),
    };
    await tx.insertAssignment(assignment);
    if (input.requestId !== undefined) await tx.insertRequest({ requestId: input.requestId, fingerprint: fingerprint(input, vif.uuid), assignmentUuid: assignment.uuid });
    await audit(tx, { actor, action: 'allocate', kind: 'assignment', uuid: assignment.uuid, name: assignmentName(assignment), after: { ...assignment, vif: vifLabel(vm, vif), pool: pool.name } });
    return { assignment, created: true };
  }, { write: true });
}

export async function reserve(store: Store, input: { address: string; pool: string; note?: string }, actor: string): Promise<Assignment> {
  const addr = parseCidr(input.address, 'address', { allowBare: true });
  if (addr.network !== addr.address) throw invalid('address', `'${input.address}' is not a canonical prefix (host bits set)`);
  if (input.note !== undefined) validateNote(input.note, 'note');
  return store.transaction(async (tx) => {
    const pool = await poolRef(tx, input.pool);
    if (pool.family !== addr.family) throw invalid('address', `${input.address} is IPv${addr.family} but pool '${pool.name}' is IPv${pool.family}`);
    const network = (await tx.getNetwork(pool.networkUuid))!;
    const size = prefixSize(addr.family, addr.prefixLength);
    await reclaimHolds(tx, pool, now());
    if (!(await takeSpecific(tx, pool, addr.network, size))) throw await whyTaken(tx, pool, network, addr.network, addr.prefixLength);
    const a: Assignment = {
      uuid: newUuid(), networkUuid: network.uuid, poolUuid: pool.uuid, vifUuid: null, family: addr.family,
      address: formatAddress(addr.family, addr.network), prefixLength: addr.prefixLength, kind: 'reserved',
      note: input.note ?? null, requestId: null, createdAt: now(),
    };
    await tx.insertAssignment(a);
    await audit(tx, { actor, action: 'reserve', kind: 'assignment', uuid: a.uuid, name: assignmentName(a), after: { ...a, pool: pool.name } });
    return a;
  }, { write: true });
}

/** Releases one assignment inside an open transaction; promotes the next address to primary. */
export async function releaseAssignmentTx(tx: StoreTx, a: Assignment, actor: string): Promise<string> {
  const pool = (await tx.getPool(a.poolUuid))!;
  await tx.deleteRequestsFor(a.uuid);
  await tx.deleteAssignment(a.uuid);
  await freeAssignment(tx, pool, a, Date.now());
  if (a.kind === 'primary' && a.vifUuid) {
    const next = (await tx.listAssignments({ vifUuid: a.vifUuid }))
      .filter((x) => x.family === a.family && x.kind === 'additional')
      .sort((x, y) => x.createdAt.localeCompare(y.createdAt))[0];
    if (next) await tx.updateAssignment({ ...next, kind: 'primary' });
  }
  await audit(tx, { actor, action: 'release', kind: 'assignment', uuid: a.uuid, name: assignmentName(a), before: { ...a, pool: pool.name } });
  return a.prefixLength === BITS[a.family] ? a.address : `${a.address}/${a.prefixLength}`;
}

export async function release(store: Store, input: { address: string; network?: string; scope?: Scope }, actor: string): Promise<Assignment> {
  const c = parseCidr(input.address, 'address', { allowBare: true });
  const text = formatAddress(c.family, c.network);
  return store.transaction(async (tx) => {
    const network = input.network ? await networkRef(tx, input.network) : undefined;
    let matches = await tx.listAssignments({ address: text, networkUuid: network?.uuid });
    if (input.address.includes('/')) matches = matches.filter((a) => a.prefixLength === c.prefixLength);
    const visible = await visibleVifUuids(tx, input.scope ?? UNSCOPED);
    // A tenant sees only addresses on its own VIFs: anything else is 'not assigned' to it.
    if (visible) matches = matches.filter((a) => a.vifUuid !== null && visible.has(a.vifUuid));
    if (matches.length === 0) throw new IpvisorError('NOT_FOUND', `address: ${input.address} is not assigned or reserved${network ? ` on network '${network.name}'` : ''}`, { field: 'address' });
    if (matches.length > 1) {
      const names = await Promise.all(matches.map(async (m) => (await tx.getNetwork(m.networkUuid))?.name ?? m.networkUuid));
      throw new IpvisorError('AMBIGUOUS', `address: ${input.address} is assigned on several networks (${names.join(', ')}); say --network`, { field: 'address' });
    }
    await releaseAssignmentTx(tx, matches[0], actor);
    return matches[0];
  }, { write: true });
}
