// Keeps a pool's free-space index (sorted free intervals in the store) and takes addresses and
// aligned prefixes out of it. Every operation is O(log n) in the store's B-tree except the aligned
// prefix search, which is linear in the number of free intervals (never in the pool size).
import { IpvisorError } from '../model/errors.js';
import type { Assignment, Network, Pool } from '../model/types.js';
import type { AddressHolder, FreeInterval, StoreTx, TakenAddress } from '../store/store.js';
import { formatAddress, prefixSize } from './addr.js';
import { type Interval, subtract } from './intervals.js';
import { assignmentInterval, usableIntervals } from './pool-space.js';

/** Recomputes a pool's free space from its configuration, its assignments and its holds. */
export async function rebuildFreeSpace(tx: StoreTx, pool: Pool, network: Network): Promise<void> {
  const assigned = (await tx.listAssignments({ poolUuid: pool.uuid })).map(assignmentInterval);
  const held = (await tx.listHolds(pool.uuid)).map((h) => ({ start: h.start, end: h.end }));
  const free = subtract(usableIntervals(pool, network), [...assigned, ...held]);
  await tx.clearFree(pool.uuid);
  for (const iv of free) await tx.insertFree({ poolUuid: pool.uuid, start: iv.start, end: iv.end });
}

/** Removes [start, end] from the free interval `iv` that contains it. */
async function carve(tx: StoreTx, iv: FreeInterval, start: bigint, end: bigint): Promise<void> {
  // One statement where one will do: the common case (the lowest address of an interval) turns the
  // interval into its remainder in place instead of deleting it and inserting the remainder.
  if (iv.start < start) {
    await tx.replaceFree(iv.poolUuid, iv.start, { poolUuid: iv.poolUuid, start: iv.start, end: start - 1n });
    if (end < iv.end) await tx.insertFree({ poolUuid: iv.poolUuid, start: end + 1n, end: iv.end });
  } else if (end < iv.end) {
    await tx.replaceFree(iv.poolUuid, iv.start, { poolUuid: iv.poolUuid, start: end + 1n, end: iv.end });
  } else {
    await tx.deleteFree(iv.poolUuid, iv.start);
  }
}

export async function takeLowest(tx: StoreTx, pool: Pool): Promise<bigint> {
  const iv = await tx.lowestFree(pool.uuid);
  if (!iv) throw new IpvisorError('POOL_EXHAUSTED', `pool '${pool.name}' has no free address`, { field: 'pool' });
  await carve(tx, iv, iv.start, iv.start);
  return iv.start;
}

/** Reclaims the pool's expired holds and takes its lowest free address: what reclaimHolds followed
 * by takeLowest does, in one store call when no hold is due (the common case). With `holder`, also
 * whether that VIF already holds an address of the family (read with the pool locked). */
export async function takeLowestReclaiming(tx: StoreTx, pool: Pool, nowIso: string, holder?: AddressHolder): Promise<TakenAddress> {
  const got = await tx.takeLowestFree(pool.uuid, nowIso, holder);
  if (got === 'expired-holds') {
    await reclaimHolds(tx, pool, nowIso);
    const start = await takeLowest(tx, pool);
    return { start, holderHasAddress: holder ? await tx.vifHoldsAddress(holder.vifUuid, holder.family) : false };
  }
  if (got === undefined) throw new IpvisorError('POOL_EXHAUSTED', `pool '${pool.name}' has no free address`, { field: 'pool' });
  return got;
}

/** Takes exactly [start, start+size-1]; returns false when any of it is not free. */
export async function takeSpecific(tx: StoreTx, pool: Pool, start: bigint, size: bigint): Promise<boolean> {
  const end = start + size - 1n;
  const iv = await tx.freeAtOrBefore(pool.uuid, start);
  if (!iv || iv.end < end) return false;
  await carve(tx, iv, start, end);
  return true;
}

/** Lowest free block of `size` addresses aligned on `size`. */
export async function takeAlignedBlock(tx: StoreTx, pool: Pool, size: bigint): Promise<bigint | undefined> {
  let from = 0n;
  for (;;) {
    const batch = await tx.freeIntervals(pool.uuid, from, 512);
    for (const iv of batch) {
      const aligned = iv.start % size === 0n ? iv.start : iv.start - (iv.start % size) + size;
      if (aligned + size - 1n <= iv.end) {
        await carve(tx, iv, aligned, aligned + size - 1n);
        return aligned;
      }
    }
    if (batch.length < 512) return undefined;
    from = batch[batch.length - 1].start + 1n;
  }
}

/** Puts [start, end] back into the free space, merging with its neighbours. */
export async function giveBack(tx: StoreTx, poolUuid: string, iv: Interval): Promise<void> {
  let { start, end } = iv;
  const prev = start > 0n ? await tx.freeAtOrBefore(poolUuid, start - 1n) : undefined;
  if (prev && prev.end >= start - 1n) {
    await tx.deleteFree(poolUuid, prev.start);
    start = prev.start;
    if (prev.end > end) end = prev.end;
  }
  const next = await tx.freeAfter(poolUuid, start);
  if (next && next.start <= end + 1n) {
    await tx.deleteFree(poolUuid, next.start);
    if (next.end > end) end = next.end;
  }
  await tx.insertFree({ poolUuid, start, end });
}

/** Returns the holds whose time is up to the free space. */
export async function reclaimHolds(tx: StoreTx, pool: Pool, nowIso: string): Promise<void> {
  for (const h of await tx.takeExpiredHolds(pool.uuid, nowIso)) await giveBack(tx, pool.uuid, h);
}

/** Frees an assignment's addresses, or holds them for the pool's hold time (DHCP leases). */
export async function freeAssignment(tx: StoreTx, pool: Pool, a: Assignment, nowMs: number): Promise<void> {
  const iv = assignmentInterval(a);
  if (pool.holdSeconds > 0) {
    await tx.insertHold({ poolUuid: pool.uuid, start: iv.start, end: iv.end, until: new Date(nowMs + pool.holdSeconds * 1000).toISOString() });
  } else {
    await giveBack(tx, pool.uuid, iv);
  }
}

export function describeBlock(pool: Pool, start: bigint, prefixLength: number): string {
  return prefixLength === (pool.family === 4 ? 32 : 128) ? formatAddress(pool.family, start) : `${formatAddress(pool.family, start)}/${prefixLength}`;
}

export { prefixSize };
