// Clash-free subnets for managed networks. Pure functions decide (pickFreeIpv4Subnet, pickUla64,
// findClash); observeHostPrefixes reads what the host uses with `ip -j` (argv, no shell).
import { randomBytes } from 'node:crypto';
import { BITS, cidrLast, formatAddress, formatCidr, parseAddress, parseCidr } from '../../core/ipam/addr.js';
import type { Family } from '../../core/model/types.js';

export interface UsedPrefix {
  cidr: string;
  /** What uses it: "route 10.0.0.0/8 dev eth0", "address 192.168.1.5/24 on br0", "network lan". */
  what: string;
}

interface Range {
  family: Family;
  start: bigint;
  end: bigint;
}

function toRange(cidr: string): Range {
  const c = parseCidr(cidr, 'cidr', { allowBare: true });
  return { family: c.family, start: c.network, end: cidrLast(c) };
}

const overlap = (a: Range, b: Range) => a.family === b.family && a.start <= b.end && b.start <= a.end;

/** The first used prefix that overlaps `cidr`, or undefined. */
export function findClash(cidr: string, used: UsedPrefix[]): UsedPrefix | undefined {
  const r = toRange(cidr);
  return used.find((u) => overlap(r, toRange(u.cidr)));
}

// Computed on first use: the hook loads this module, only `network create` needs it.
let privateV4: Range[] | undefined;
const PRIVATE_V4_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

/** A random /prefix (default /24) from the RFC 1918 ranges overlapping nothing in `used`. Random
 * rather than first-fit so that two hosts (or two ipvisor installs) rarely pick the same one. */
export function pickFreeIpv4Subnet(used: UsedPrefix[], opts: { prefix?: number; random?: (n: number) => number } = {}): string | undefined {
  const prefix = opts.prefix ?? 24;
  const random = opts.random ?? ((n: number) => randomBytes(4).readUInt32BE(0) % n);
  const size = 1n << BigInt(32 - prefix);
  const PRIVATE_V4 = (privateV4 ??= PRIVATE_V4_CIDRS.map(toRange));
  const usedRanges = used.map((u) => toRange(u.cidr)).filter((r) => r.family === 4);
  const counts = PRIVATE_V4.map((r) => Number((r.end - r.start + 1n) / size));
  const total = counts.reduce((a, b) => a + b, 0);
  const free = (start: bigint) => !usedRanges.some((u) => u.start <= start + size - 1n && start <= u.end);
  // Random probes first; a systematic scan from a random point guarantees an answer if one exists.
  const at = (i: number): bigint => {
    for (let k = 0; k < PRIVATE_V4.length; k++) {
      if (i < counts[k]) return PRIVATE_V4[k].start + BigInt(i) * size;
      i -= counts[k];
    }
    throw new Error('unreachable');
  };
  for (let probe = 0; probe < 256; probe++) {
    const s = at(random(total));
    if (free(s)) return formatCidr(4, s, prefix);
  }
  const from = random(total);
  for (let j = 0; j < total; j++) {
    const s = at((from + j) % total);
    if (free(s)) return formatCidr(4, s, prefix);
  }
  return undefined;
}

/** A random ULA /64 (RFC 4193: fd00::/8 + 40-bit global ID + 16-bit subnet ID) not in `used`. */
export function pickUla64(used: UsedPrefix[], rnd: () => Buffer = () => randomBytes(7)): string {
  for (let i = 0; i < 64; i++) {
    const b = rnd();
    let v = 0xfdn;
    for (let k = 0; k < 7; k++) v = (v << 8n) | BigInt(b[k]);
    const cidr = formatCidr(6, v << 64n, 64);
    if (!findClash(cidr, used)) return cidr;
  }
  throw new Error('could not find a free ULA /64');
}

/** Gateway, DHCP range and the pool range outside it for an IPv4 subnet: gateway = first host,
 * pool = the lower half after the gateway, DHCP = the upper half (less broadcast). */
export function splitIpv4Subnet(cidr: string, gateway?: string | null): { gateway: string; prefix: number; pool: { first: string; last: string }; dhcp: { start: string; end: string } } {
  const c = parseCidr(cidr, 'subnet', { strict: true });
  if (c.family !== 4) throw new Error('not IPv4');
  if (c.prefixLength > 29) throw new Error(`subnet: /${c.prefixLength} is too small for a managed network (at most /29)`);
  const last = cidrLast(c);
  const mid = c.network + (last - c.network + 1n) / 2n;
  const gw = gateway ? parseAddress(gateway).value : c.network + 1n;
  const f = (v: bigint) => formatAddress(4, v);
  // The pool may include the gateway: the network's gateway is never handed out (pool-space.ts),
  // and dnsmasq never leases its own address.
  return { gateway: f(gw), prefix: c.prefixLength, pool: { first: f(c.network + 1n), last: f(mid - 1n) }, dhcp: { start: f(mid), end: f(last - 1n) } };
}

interface IpRoute { dst?: string; dev?: string; type?: string; table?: string; protocol?: string }
interface IpAddrInfo { ifname?: string; addr_info?: Array<{ family?: string; local?: string; prefixlen?: number; scope?: string }> }

/** Parses `ip -j route show table all` (one family) into used prefixes; skips default routes,
 * local/broadcast/multicast entries, link-local and bridge `except` names. */
export function routesToUsed(family: Family, json: string, exceptDev?: string | null): UsedPrefix[] {
  const out: UsedPrefix[] = [];
  let routes: IpRoute[];
  try {
    routes = JSON.parse(json || '[]') as IpRoute[];
  } catch {
    return out;
  }
  for (const r of routes) {
    if (!r.dst || r.dst === 'default') continue;
    if (r.type && r.type !== 'unicast') continue;
    if (r.table === 'local') continue;
    if (exceptDev && r.dev === exceptDev) continue;
    const cidr = r.dst.includes('/') ? r.dst : `${r.dst}/${BITS[family]}`;
    let c;
    try {
      c = parseCidr(cidr, 'dst', { allowBare: true });
    } catch {
      continue;
    }
    if (c.family !== family || c.prefixLength === 0) continue;
    if (family === 6 && (c.network >> 118n) === 0x3fan) continue; // fe80::/10
    out.push({ cidr: formatCidr(c.family, c.network, c.prefixLength), what: `route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}` });
  }
  return out;
}

/** Parses `ip -j addr show` into the subnets of global addresses. */
export function addrsToUsed(json: string, exceptDev?: string | null): UsedPrefix[] {
  const out: UsedPrefix[] = [];
  let links: IpAddrInfo[];
  try {
    links = JSON.parse(json || '[]') as IpAddrInfo[];
  } catch {
    return out;
  }
  for (const l of links) {
    if (exceptDev && l.ifname === exceptDev) continue;
    for (const a of l.addr_info ?? []) {
      if (!a.local || a.scope === 'host' || a.scope === 'link') continue;
      try {
        const c = parseCidr(`${a.local}/${a.prefixlen ?? (a.family === 'inet6' ? 128 : 32)}`, 'addr', { allowBare: true });
        out.push({ cidr: formatCidr(c.family, c.network, c.prefixLength), what: `address ${a.local}/${a.prefixlen} on ${l.ifname}` });
      } catch {
        /* not an address we understand */
      }
    }
  }
  return out;
}

export interface CommandRunner {
  run(argv: string[], opts?: { allowFail?: boolean }): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Routes and addresses on this host (in the caller's network namespace), except those on
 * `exceptDev` (a network's own bridge, when re-checking a running network). */
export async function observeHostPrefixes(runner: CommandRunner, exceptDev?: string | null): Promise<UsedPrefix[]> {
  const [r4, r6, a] = await Promise.all([
    runner.run(['ip', '-j', '-4', 'route', 'show', 'table', 'all'], { allowFail: true }),
    runner.run(['ip', '-j', '-6', 'route', 'show', 'table', 'all'], { allowFail: true }),
    runner.run(['ip', '-j', 'addr', 'show'], { allowFail: true }),
  ]);
  return [...routesToUsed(4, r4.stdout, exceptDev), ...routesToUsed(6, r6.stdout, exceptDev), ...addrsToUsed(a.stdout, exceptDev)];
}
