// What both backends share of the usage queries (store.ts UsageStore): the answer assembled from
// two index-only reads, the count (or keys) of a pool's assignments from its (pool_uuid, addr_key)
// index and the few other assignments (prefixes, reservations) from the partial index
// assignments_special. Whatever is not in the second is a VIF's single address.
import type { AssignmentKind } from '../model/types.js';
import type { AssignmentSpan, UsageCount } from './store.js';

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
