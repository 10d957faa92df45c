// Pure: the usage picture of a pool — the state of every address of an IPv4 /24 block, the fill of
// each /24 of a large pool, and for IPv6 the largest free blocks. Works on intervals, so a /16 pool
// costs one pass over its assignments, never a walk over all its addresses.
import type { Family, Network, Pool } from '../model/types.js';
import { BITS, formatAddress, formatCidr, parseAddress, parseCidr, cidrLast } from './addr.js';
import { type Interval, normalize } from './intervals.js';
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

/** An assignment as the map needs it: where (its address text, or its first address as a number,
 * as the store's spans give it without parsing a document), how large, what kind, held by whom
 * (family: the pool's when absent; holder: none when absent, as the summaries need none). */
export type MapAssignment = { prefixLength: number; family?: Family; kind: string; holder?: string | null } & ({ address: string } | { start: bigint });

function assignmentStart(a: MapAssignment): bigint {
  return 'start' in a ? a.start : parseAddress(a.address).value;
}

export interface MapInput {
  pool: Pick<Pool, 'family' | 'entries' | 'exclusions'>;
  network: Pick<Network, 'subnets' | 'hostAddresses'>;
  /** Assignments of the pool (single addresses and routed prefixes) with their holder names: all of
   * them for blockSummaries, at least those overlapping the block for blockCells. */
  assignments: MapAssignment[];
  holds: Array<{ start: bigint; end: bigint; until: string }>;
}

/** The non-free intervals of a pool, highest precedence first: an address takes the state of the
 * first interval that covers it (an assignment wins over a hold, a hold over a network role, a
 * network role over an exclusion). */
export function markedIntervals(input: MapInput): MarkedInterval[] {
  const family = input.pool.family;
  const out: MarkedInterval[] = [];
  for (const a of input.assignments) {
    const start = assignmentStart(a);
    const end = start + (1n << BigInt(BITS[a.family ?? family] - a.prefixLength)) - 1n;
    out.push({ start, end, state: a.kind === 'reserved' ? 'reserved' : 'assigned', holder: a.holder ?? null });
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

/** Pools spanning more addresses than this get no per-/24 picture (a /8 is 2^24). */
export const MAP_MAX_SPAN = 1 << 24;

/** One summary per /24 that the pool touches, in address order. Paints one state byte per address
 * of the pool's span, lowest precedence first, so each address ends with the state of the first mark
 * that covers it: linear in the span and the marks (a /16 half full: 65,536 bytes, 32,768 marks). */
export function blockSummaries(input: MapInput): BlockSummary[] {
  if (input.pool.family !== 4) throw new Error('blockSummaries: IPv4 pools only');
  const pool = normalize(entryIntervals(input.pool));
  if (!pool.length) return [];
  const base = pool[0].start & ~255n;
  const top = pool[pool.length - 1].end | 255n;
  const span = Number(top - base + 1n);
  if (span > MAP_MAX_SPAN) throw new Error(`blockSummaries: the pool spans ${span} addresses, more than ${MAP_MAX_SPAN}`);
  const OUTSIDE = 255;
  const FREE = ADDRESS_STATES.indexOf('free');
  const state = new Uint8Array(span).fill(OUTSIDE);
  for (const p of pool) state.fill(FREE, Number(p.start - base), Number(p.end - base) + 1);
  // The other marks first, lowest precedence first; the assignments last, as they win over all of
  // them (and never overlap each other). Assignments are painted with plain numbers, no interval
  // object each: a half-full /16 has 32,768 of them.
  const marks = markedIntervals({ ...input, assignments: [] });
  for (let i = marks.length - 1; i >= 0; i--) {
    const m = marks[i];
    const lo = m.start > base ? m.start : base;
    const hi = m.end < top ? m.end : top;
    if (lo > hi) continue;
    const code = ADDRESS_STATES.indexOf(m.state);
    // A mark takes only addresses of the pool (paint over everything not outside).
    for (let o = Number(lo - base), end = Number(hi - base); o <= end; o++) if (state[o] !== OUTSIDE) state[o] = code;
  }
  const ASSIGNED = ADDRESS_STATES.indexOf('assigned'), RESERVED = ADDRESS_STATES.indexOf('reserved');
  for (const a of input.assignments) {
    const start = assignmentStart(a);
    const size = 2 ** (32 - a.prefixLength);
    const code = a.kind === 'reserved' ? RESERVED : ASSIGNED;
    // clipped to the span, as the marks are
    const from = Math.max(0, Number(start - base)), to = Math.min(span - 1, Number(start - base) + size - 1);
    for (let o = from; o <= to; o++) if (state[o] !== OUTSIDE) state[o] = code;
  }
  const out: BlockSummary[] = [];
  for (let b = 0; b < span; b += 256) {
    const counts = new Array<number>(ADDRESS_STATES.length).fill(0);
    let inPool = 0;
    for (let o = b; o < b + 256; o++) {
      if (state[o] === OUTSIDE) continue;
      inPool++;
      counts[state[o]]++;
    }
    if (!inPool) continue;
    const summary: BlockSummary = { block: formatCidr(4, base + BigInt(b), 24), inPool, used: inPool - counts[FREE], counts: {} };
    ADDRESS_STATES.forEach((s, i) => {
      if (counts[i]) summary.counts[s] = counts[i];
    });
    summary.counts.free = counts[FREE];
    out.push(summary);
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
