// Pure: which addresses of a pool may ever be handed out (its ranges minus exclusions and the
// addresses the network itself uses), and its size. Nothing here walks addresses one by one.
import type { Assignment, Family, Network, Pool } from '../model/types.js';
import { BITS, parseAddress, parseCidr, cidrLast, prefixSize } from './addr.js';
import { type Interval, normalize, subtract, totalSize } from './intervals.js';

export function entryIntervals(pool: Pick<Pool, 'entries'>): Interval[] {
  return pool.entries.map((e) => ({ start: parseAddress(e.first).value, end: parseAddress(e.last).value }));
}

export function exclusionIntervals(pool: Pick<Pool, 'exclusions'>): Interval[] {
  return pool.exclusions.map((x) => {
    const c = parseCidr(x, 'exclude', { allowBare: true });
    return { start: c.network, end: cidrLast(c) };
  });
}

/** Network and broadcast addresses of IPv4 subnets (not /31, /32), the subnet-router anycast address
 * of IPv6 subnets (RFC 4291 2.6.1, as Neutron does), gateways and host addresses. */
export function networkReservedIntervals(network: Pick<Network, 'subnets' | 'hostAddresses'>, family: Family): Interval[] {
  const out: Interval[] = [];
  for (const s of network.subnets) {
    if (s.family !== family) continue;
    const c = parseCidr(s.cidr, 'subnet');
    if (family === 4 && c.prefixLength <= 30) {
      out.push({ start: c.network, end: c.network }, { start: cidrLast(c), end: cidrLast(c) });
    }
    if (family === 6 && c.prefixLength <= 126) out.push({ start: c.network, end: c.network });
    if (s.gateway) {
      const g = parseAddress(s.gateway);
      if (g.family === family) out.push({ start: g.value, end: g.value });
    }
  }
  for (const h of network.hostAddresses) {
    const c = parseCidr(h, 'host-address');
    if (c.family === family) out.push({ start: c.address, end: c.address });
  }
  return out;
}

/** The addresses a pool can hand out at all, before assignments and holds. */
export function usableIntervals(pool: Pool, network: Network): Interval[] {
  return subtract(subtract(entryIntervals(pool), exclusionIntervals(pool)), networkReservedIntervals(network, pool.family));
}

export function assignmentInterval(a: Pick<Assignment, 'address' | 'prefixLength' | 'family'>): Interval {
  const start = parseAddress(a.address).value;
  return { start, end: start + prefixSize(a.family, a.prefixLength) - 1n };
}

export function poolTotal(pool: Pool, network: Network): bigint {
  return totalSize(usableIntervals(pool, network));
}

export function maxPrefixLength(family: Family): number {
  return BITS[family];
}

export { normalize };
