// What both backends share of the usage queries (store.ts UsageStore): the answer assembled from
// two index-only reads, the count (or keys) of a pool's assignments from its (pool_uuid, addr_key)
// index and the few other assignments (prefixes, reservations) from the partial index
// assignments_special. Whatever is not in the second is a VIF's single address.
import type { AssignmentKind } from '../model/types.js';
import { formatAddress, keyToBigInt } from '../ipam/addr.js';
import type { AssignmentSpan, UsageCount, VifAddress } from './store.js';

/** The predicate of the partial index assignments_special (both migrations): a query must name it
 * word for word for the planner to use the index. */
export const SPECIAL = "(kind NOT IN ('primary', 'additional') OR prefix_length <> CASE family WHEN 4 THEN 32 ELSE 128 END)";

export const fullLength = (family: number): number => (family === 4 ? 32 : 128);

/** A pool's counts: its special groups, and the rest of its total as VIF single addresses. */
export function poolCounts(pool: { uuid: string; family: number; total: number }, special: UsageCount[]): UsageCount[] {
  const out = special.filter((c) => c.poolUuid === pool.uuid);
  const rest = pool.total - out.reduce((s, c) => s + c.count, 0);
  if (rest > 0) out.push({ poolUuid: pool.uuid, kind: 'address', family: pool.family, prefixLength: fullLength(pool.family), count: rest });
  return out;
}

/** A pool's spans: every key, with the kind and length of the special ones. */
export function poolSpans(family: number, keys: bigint[], special: Array<{ start: bigint; kind: AssignmentKind; prefixLength: number }>): AssignmentSpan[] {
  const byStart = new Map(special.map((s) => [s.start, s]));
  const full = fullLength(family);
  return keys.map((start) => {
    const s = byStart.get(start);
    return s ? { start, prefixLength: s.prefixLength, kind: s.kind } : { start, prefixLength: full, kind: 'address' as const };
  });
}

/** Above this many VIFs one scan of the table beats an IN list (SQLite: a probe per VIF). */
export const VIF_SCAN_THRESHOLD = 200;

/** Rows (vif_uuid, family, addr_key, prefix_length, kind) as VifAddress, by family and address
 * (the order of listAssignments), keeping only the VIFs in `only` when given. IPv4 keys are read as
 * plain numbers (no BigInt per row: 32,768 rows of it cost more than the query). */
export function vifAddresses(rows: Array<Record<string, unknown>>, only?: Set<string>): VifAddress[] {
  const v4: Array<{ n: number; r: Record<string, unknown> }> = [];
  const v6: Array<Record<string, unknown>> = [];
  for (const r of rows) {
    if (only && !only.has(r.vif_uuid as string)) continue;
    if (r.family === 4) v4.push({ n: parseInt((r.addr_key as string).slice(-8), 16), r });
    else v6.push(r);
  }
  v4.sort((a, b) => a.n - b.n);
  v6.sort((a, b) => ((a.addr_key as string) < (b.addr_key as string) ? -1 : (a.addr_key as string) > (b.addr_key as string) ? 1 : 0));
  const row = (r: Record<string, unknown>, address: string): VifAddress => ({
    vifUuid: r.vif_uuid as string, family: r.family as 4 | 6, address, prefixLength: r.prefix_length as number, kind: r.kind as AssignmentKind,
  });
  return [
    ...v4.map(({ n, r }) => row(r, `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`)),
    ...v6.map((r) => row(r, formatAddress(6, keyToBigInt(r.addr_key as string)))),
  ];
}
