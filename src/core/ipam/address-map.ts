// Pure: the usage picture of a pool — the state of every address of an IPv4 /24 block, the fill of
// each /24 of a large pool, and for IPv6 the largest free blocks. Works on intervals, so a /16 pool
// costs one pass over its assignments, never a walk over all its addresses.
import type { Family, Network, Pool } from '../model/types.js';
import { BITS, formatAddress, formatCidr, parseAddress, parseCidr, cidrLast } from './addr.js';
import { type Interval, normalize, totalSize } from './intervals.js';
import { entryIntervals, exclusionIntervals } from './pool-space.js';

/** Every state an address can be in, as `ip show` names them. */
export const ADDRESS_STATES = ['free', 'assigned', 'reserved', 'held', 'excluded', 'gateway', 'network', 'broadcast', 'host-address', 'outside'] as const;
export type AddressState = (typeof ADDRESS_STATES)[number];

/** An interval of addresses that is not free, with who or what holds it. */
export interface MarkedInterval extends Interval {
  state: AddressState;
  /** VM:DEVICE, a reservation's note, the hold's end time, ... */
  holder: string | null;
}

export interface MapCell {
  address: string;
  state: AddressState;
  holder: string | null;
}

export interface BlockSummary {
  /** The /24, e.g. "10.0.4.0/24". */
  block: string;
  /** Addresses of the block that belong to the pool. */
  inPool: number;
  /** Of those, the ones that are not free (assigned, reserved, held, excluded, network roles). */
  used: number;
  counts: Partial<Record<AddressState, number>>;
}

export interface MapInput {
  pool: Pick<Pool, 'family' | 'entries' | 'exclusions'>;
  network: Pick<Network, 'subnets' | 'hostAddresses'>;
  /** Assignments of the pool (single addresses and routed prefixes) with their holder names. */
  assignments: Array<{ address: string; prefixLength: number; family: Family; kind: string; holder: string | null }>;
  holds: Array<{ start: bigint; end: bigint; until: string }>;
}

/** The non-free intervals of a pool, highest precedence first: an address takes the state of the
 * first interval that covers it (an assignment wins over a hold, a hold over a network role, a
 * network role over an exclusion). */
export function markedIntervals(input: MapInput): MarkedInterval[] {
  const family = input.pool.family;
  const out: MarkedInterval[] = [];
  for (const a of input.assignments) {
    const start = parseAddress(a.address).value;
    const end = start + (1n << BigInt(BITS[a.family] - a.prefixLength)) - 1n;
    out.push({ start, end, state: a.kind === 'reserved' ? 'reserved' : 'assigned', holder: a.holder });
  }
  for (const h of input.holds) out.push({ start: h.start, end: h.end, state: 'held', holder: `until ${h.until}` });
  for (const s of input.network.subnets) {
    if (s.family !== family) continue;
    const c = parseCidr(s.cidr, 'subnet');
    if (family === 4 && c.prefixLength <= 30) {
      out.push({ start: c.network, end: c.network, state: 'network', holder: s.cidr });
      out.push({ start: cidrLast(c), end: cidrLast(c), state: 'broadcast', holder: s.cidr });
    }
    if (family === 6 && c.prefixLength <= 126) out.push({ start: c.network, end: c.network, state: 'network', holder: s.cidr });
    if (s.gateway) {
      const g = parseAddress(s.gateway);
      if (g.family === family) out.push({ start: g.value, end: g.value, state: 'gateway', holder: s.cidr });
    }
  }
  for (const h of input.network.hostAddresses) {
    const c = parseCidr(h, 'host-address');
    if (c.family === family) out.push({ start: c.address, end: c.address, state: 'host-address', holder: h });
  }
  for (const x of exclusionIntervals(input.pool)) out.push({ ...x, state: 'excluded', holder: null });
  return out;
}

function stateAt(value: bigint, marks: MarkedInterval[], pool: Interval[]): { state: AddressState; holder: string | null } {
  for (const m of marks) {
    if (value >= m.start && value <= m.end) {
      // Network roles are shown wherever they are; a mark of the pool's own kinds only inside it.
      if (m.state === 'excluded' && !pool.some((p) => value >= p.start && value <= p.end)) break;
      return { state: m.state, holder: m.holder };
    }
  }
  if (!pool.some((p) => value >= p.start && value <= p.end)) return { state: 'outside', holder: null };
  return { state: 'free', holder: null };
}

/** The 256 cells of one IPv4 /24 block. */
export function blockCells(input: MapInput, blockCidr: string): MapCell[] {
  if (input.pool.family !== 4) throw new Error('blockCells: IPv4 pools only');
  const block = parseCidr(blockCidr, 'block');
  if (block.family !== 4 || block.prefixLength !== 24) throw new Error('blockCells: the block must be an IPv4 /24');
  const end = block.network + 255n;
  const marks = markedIntervals(input).filter((m) => m.start <= end && m.end >= block.network);
  const pool = entryIntervals(input.pool).filter((p) => p.start <= end && p.end >= block.network);
  const cells: MapCell[] = [];
  for (let v = block.network; v <= end; v++) cells.push({ address: formatAddress(4, v), ...stateAt(v, marks, pool) });
  return cells;
}

/** One summary per /24 that the pool touches, in address order. */
export function blockSummaries(input: MapInput): BlockSummary[] {
  if (input.pool.family !== 4) throw new Error('blockSummaries: IPv4 pools only');
  const pool = normalize(entryIntervals(input.pool));
  const marks = markedIntervals(input);
  const blocks = new Map<bigint, BlockSummary>();
  const blockOf = (start: bigint): BlockSummary => {
    let b = blocks.get(start);
    if (!b) {
      b = { block: formatCidr(4, start, 24), inPool: 0, used: 0, counts: {} };
      blocks.set(start, b);
    }
    return b;
  };
  // Pool size per block.
  for (const p of pool) {
    for (let b = p.start & ~255n; b <= p.end; b += 256n) {
      const lo = p.start > b ? p.start : b;
      const hi = p.end < b + 255n ? p.end : b + 255n;
      blockOf(b).inPool += Number(hi - lo + 1n);
    }
  }
  // Each pool address takes the state of the first mark that covers it: clip the marks to the
  // pool, then remove what a higher-precedence mark already took.
  let taken: Interval[] = [];
  for (const m of marks) {
    let pieces = clip([{ start: m.start, end: m.end }], pool);
    pieces = subtractAll(pieces, taken);
    if (pieces.length === 0) continue;
    taken = normalize([...taken, ...pieces]);
    for (const piece of pieces) {
      for (let b = piece.start & ~255n; b <= piece.end; b += 256n) {
        const lo = piece.start > b ? piece.start : b;
        const hi = piece.end < b + 255n ? piece.end : b + 255n;
        const n = Number(hi - lo + 1n);
        const s = blockOf(b);
        s.used += n;
        s.counts[m.state] = (s.counts[m.state] ?? 0) + n;
      }
    }
  }
  const out = [...blocks.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, s]) => s);
  for (const s of out) s.counts.free = s.inPool - s.used;
  return out;
}

function clip(list: Interval[], to: Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const a of list) {
    for (const b of to) {
      const lo = a.start > b.start ? a.start : b.start;
      const hi = a.end < b.end ? a.end : b.end;
      if (lo <= hi) out.push({ start: lo, end: hi });
    }
  }
  return out;
}

function subtractAll(list: Interval[], remove: Interval[]): Interval[] {
  let out = list;
  for (const r of remove) {
    const next: Interval[] = [];
    for (const a of out) {
      if (r.end < a.start || r.start > a.end) next.push(a);
      else {
        if (a.start < r.start) next.push({ start: a.start, end: r.start - 1n });
        if (a.end > r.end) next.push({ start: r.end + 1n, end: a.end });
      }
    }
    out = next;
  }
  return out;
}

/** The largest aligned CIDR blocks inside the free intervals, biggest first (IPv6 pools, and any
 * pool too large for a cell picture). */
export function largestFreeBlocks(family: Family, free: Interval[], limit = 5): string[] {
  const found: Array<{ len: number; start: bigint }> = [];
  for (const iv of free) {
    let cur = iv.start;
    // Greedy decomposition of [start, end] into aligned blocks; keep only the biggest few.
    let guard = 0;
    while (cur <= iv.end && guard++ < 256) {
      let len = BITS[family];
      while (len > 0) {
        const size = 1n << BigInt(BITS[family] - len + 1);
        if (cur % size !== 0n || cur + size - 1n > iv.end) break;
        len--;
      }
      found.push({ len, start: cur });
      cur += 1n << BigInt(BITS[family] - len);
    }
  }
  found.sort((a, b) => a.len - b.len || (a.start < b.start ? -1 : 1));
  return found.slice(0, limit).map((f) => formatCidr(family, f.start, f.len));
}

export function intervalsSize(list: Interval[]): bigint {
  return totalSize(list);
}
