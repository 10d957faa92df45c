// Pure: the store (a Snapshot) plus facts about this host -> the HostPlan, everything ipvisor wants
// on this host: bridge addresses, routes, its default route, proxy neighbours, sysctls, the nft
// set elements (the ruleset skeleton is constant, see nft-ruleset.ts) and iptables FORWARD
// accepts for libvirt networks. No I/O here; golden-file tests cover it without root.
import ipaddr from 'ipaddr.js';
import { cidrContains, formatAddress, isLinkLocal6, parseAddress, parseCidr, prefixSize } from '../ipam/addr.js';
import { effectiveLocking } from '../model/locking.js';
import { isValidIfname } from '../model/validate.js';
import type { Snapshot } from '../model/snapshot.js';
import type { Assignment, Family, LockingMode, Network, Vif } from '../model/types.js';
import type { NftElements } from './nft-ruleset.js';
import { emptyElements, ipv6Hex } from './nft-ruleset.js';

/** ipvisor's routing protocol number (ip route ... proto 250); shown as "250" unless registered. */
export const IPVISOR_RT_PROTO = 250;
/** Default metric of ipvisor's own default route: preferred over DHCP/NetworkManager (100+). */
export const DEFAULT_GATEWAY_METRIC = 1;
/** Comment that marks ipvisor's own rules in iptables/ip6tables FORWARD. */
export const IPTABLES_COMMENT = 'ipvisor';

export interface HostLinkFact {
  up: boolean;
  /** Administratively up (`ip link set X up`); routes through a link that is not are refused. Unset: assumed up. */
  adminUp?: boolean;
  /** Addresses on the link as "ADDR/LEN" (canonical), tentative ones excluded. */
  addresses: string[];
}

/** What the compiler needs to know about the host (observed by src/host/observe.ts). */
export interface HostFacts {
  links: Record<string, HostLinkFact>;
  /** This host's name: VIFs of VMs recorded on another host (Vm.host) are not enforced here. Unset: all. */
  hostname?: string;
}

export interface HostGatewaySetting {
  via: string;
  /** Network UUID: add the route only once that network's bridge is up and holds a same-family address. */
  whenUp: string | null;
  metric: number;
}

/** The XCP-ng "no physical NIC in dom0" case: narrow the management address to /32 (/128). */
export interface HostNarrowSetting {
  dev: string;
  address: string;
}

/** Host-wide settings kept in the store's doc table (kind 'host-setting'). */
export interface HostSettings {
  gateway?: HostGatewaySetting | null;
  narrow?: HostNarrowSetting[];
}

export interface PlannedAddress {
  dev: string;
  /** "ADDR/LEN", canonical. */
  cidr: string;
  family: Family;
  why: string;
}

export interface PlannedRoute {
  /** Canonical CIDR or "default". */
  dst: string;
  family: Family;
  dev: string | null;
  via: string | null;
  metric: number | null;
  why: string;
}

export interface PlannedProxyNeighbour {
  dev: string;
  address: string;
  family: Family;
}

export interface PlannedSysctl {
  key: string;
  value: string;
}

export interface PlannedIptablesRule {
  family: Family;
  /** Rule arguments for `iptables -I FORWARD 1 ...` / `-D FORWARD ...`, comment included. */
  args: string[];
}

export interface PlannedNarrowing {
  dev: string;
  family: Family;
  /** The address as found, "ADDR/LEN". */
  from: string;
  /** "ADDR/32" or "ADDR/128". */
  to: string;
}

export interface VifEnforcement {
  vifUuid: string;
  vmUuid: string;
  device: number;
  networkUuid: string;
  ifname: string | null;
  mac: string;
  locking: LockingMode;
  /** Allowed sources as CIDRs ("10.0.0.5/32", "203.0.113.8/29"). */
  allowed: string[];
  /**
   * This host enforces the VIF on `ifname` (the set elements under that name are its own). False:
   * unbound, another host's VM, an XAPI network, a bad name, or a stale binding of a name that a
   * newer one holds.
   */
  enforced: boolean;
}

export interface HostPlan {
  addresses: PlannedAddress[];
  routes: PlannedRoute[];
  proxyNeighbours: PlannedProxyNeighbour[];
  sysctls: PlannedSysctl[];
  iptablesForward: PlannedIptablesRule[];
  narrowings: PlannedNarrowing[];
  nft: NftElements;
  vifs: VifEnforcement[];
  /** Things the user should know (bridge missing, bad ifname, ...). Not errors. */
  warnings: string[];
}

/** One interface-name rule for every entry point and the compiler (model/validate.ts). */
export { isValidIfname };

/** Whether ipvisor owns all firewalling of a network (so NAT and inbound filtering are its job). */
export function ownsFirewall(n: Network): boolean {
  if (n.driver === 'bridge') return true;
  if (n.driver === 'libvirt') return n.mode === 'open' || n.extra?.forwardMode === 'open';
  return false;
}

/** Whether libvirt writes its own iptables rules (incl. the REJECTs) for this network. */
function libvirtFirewalled(n: Network): boolean {
  return n.driver === 'libvirt' && (n.mode === 'nat' || n.mode === 'routed') && !ownsFirewall(n);
}

const V4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Fast address parse for the per-VIF hot path (20,000 VIFs x 3 addresses): IPv4 by hand, IPv6
 * straight through ipaddr.IPv6 (the generic parser tries IPv4 first, which throws for IPv6 text).
 */
function fastParse(text: string): { family: Family; value: bigint } {
  if (V4_RE.test(text)) {
    const [a, b, c, d] = text.split('.').map(Number);
    return { family: 4, value: BigInt(((a << 24) >>> 0) + (b << 16) + (c << 8) + d) };
  }
  if (text.includes(':') && !text.includes('%')) {
    let parts: number[] | undefined;
    try {
      parts = ipaddr.IPv6.parse(text).parts;
    } catch {
      parts = undefined;
    }
    if (parts) {
      let v = 0n;
      for (const part of parts) v = (v << 16n) | BigInt(part);
      return { family: 6, value: v };
    }
  }
  return parseAddress(text, 'address');
}

function fastCanonical(text: string): string {
  if (V4_RE.test(text)) return text;
  const p = fastParse(text);
  return formatAddress(p.family, p.value);
}

/** Canonical "ADDR/LEN" (nft and ip print canonical text; a stray non-canonical record must not cause churn). */
export function hostCidr(a: Pick<Assignment, 'address' | 'prefixLength' | 'family'>): string {
  return `${fastCanonical(a.address)}/${a.prefixLength}`;
}

/** "ADDR/LEN" (canonical, from hostCidr) -> first address and prefix length. */
function splitCidr(cidr: string): { family: Family; network: bigint; prefixLength: number } {
  const i = cidr.indexOf('/');
  const p = fastParse(i < 0 ? cidr : cidr.slice(0, i));
  const bits = p.family === 4 ? 32 : 128;
  const prefixLength = i < 0 ? bits : Number(cidr.slice(i + 1));
  const host = (1n << BigInt(bits - prefixLength)) - 1n;
  return { family: p.family, network: p.value & ~host, prefixLength };
}

export { ipv6Hex };

/** Interval-set element text for one CIDR: "10.0.0.5", "10.0.0.0/29". */
function setAddr(cidr: string): string {
  const [addr, len] = cidr.split('/');
  const family: Family = addr.includes(':') ? 6 : 4;
  return Number(len) === (family === 4 ? 32 : 128) ? addr : cidr;
}

/** Drops CIDRs contained in another one of the list (nft interval sets refuse overlaps). */
function withoutOverlaps(cidrs: string[]): string[] {
  const unique = [...new Set(cidrs)];
  if (unique.length < 2 || unique.every((c) => !c.includes('/') || c.endsWith('/32') || c.endsWith('/128'))) return unique;
  const parsed = unique.map((c) => ({ c, p: splitCidr(c) }));
  parsed.sort((a, b) => (a.p.network < b.p.network ? -1 : a.p.network > b.p.network ? 1 : a.p.prefixLength - b.p.prefixLength));
  const out: typeof parsed = [];
  for (const x of parsed) {
    const prev = out[out.length - 1];
    if (prev && prev.p.family === x.p.family && (x.p.network >> BigInt((prev.p.family === 4 ? 32 : 128) - prev.p.prefixLength)) === (prev.p.network >> BigInt((prev.p.family === 4 ? 32 : 128) - prev.p.prefixLength))) continue;
    out.push(x);
  }
  return out.map((x) => x.c);
}

function nd6Element(ifname: string, cidr: string): string {
  const p = splitCidr(cidr);
  const first = p.network;
  const last = first + prefixSize(6, p.prefixLength) - 1n;
  return first === last ? `"${ifname}" . ${ipv6Hex(first)}` : `"${ifname}" . ${ipv6Hex(first)}-${ipv6Hex(last)}`;
}

/** A per-interface sysctl key. sysctl(8) reads dots as separators, so an interface name with a dot
 * (a VLAN, eth0.100) needs the key in its '/' form: net/ipv4/neigh/eth0.100/proxy_delay. */
export function interfaceSysctl(prefix: string, dev: string, leaf: string): string {
  return dev.includes('.') ? `${prefix.replace(/\./g, '/')}/${dev}/${leaf}` : `${prefix}.${dev}.${leaf}`;
}

export function compileHostPlan(snapshot: Snapshot, facts: HostFacts, settings: HostSettings = {}): HostPlan {
  const plan: HostPlan = {
    addresses: [],
    routes: [],
    proxyNeighbours: [],
    sysctls: [],
    iptablesForward: [],
    narrowings: [],
    nft: emptyElements(),
    vifs: [],
    warnings: [],
  };
  const networks = new Map(snapshot.networks.map((n) => [n.uuid, n]));
  const routedPools = new Set(snapshot.pools.filter((p) => p.purpose === 'routed').map((p) => p.uuid));
  const byVif = new Map<string, Assignment[]>();
  const routed: Assignment[] = [];
  for (const a of snapshot.assignments) {
    // A routed pool's addresses are routed to their network even when reserved for no VIF: that is
    // libvirt-nethook-helper's "<ip> <network>" line (import routed-ips). No VIF is locked to them.
    if (a.kind === 'routed' || routedPools.has(a.poolUuid)) routed.push(a);
    if (a.kind === 'reserved' || !a.vifUuid) continue;
    const list = byVif.get(a.vifUuid) ?? [];
    list.push(a);
    byVif.set(a.vifUuid, list);
  }
  const primaryOf = new Map<string, string>();
  for (const a of snapshot.assignments) if (a.kind === 'primary' && a.vifUuid) primaryOf.set(`${a.vifUuid}/${a.family}`, a.address);
  const bridgeUp = (n: Network): boolean => !!n.bridge && !!facts.links[n.bridge];
  const sysctls = new Map<string, string>();

  // Bridge addresses: subnet gateways where ipvisor owns the bridge's L3, and host addresses.
  for (const n of [...snapshot.networks].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!n.bridge) continue;
    if (!isValidIfname(n.bridge)) {
      // a record from before entry validation: it cannot be named in the ruleset
      plan.warnings.push(`network ${n.name}: bridge '${n.bridge}' is not a valid interface name; skipped`);
      continue;
    }
    if (!bridgeUp(n)) {
      if (n.driver !== 'xapi') plan.warnings.push(`network ${n.name}: bridge ${n.bridge} is not on this host; skipped`);
      continue;
    }
    const wanted: PlannedAddress[] = [];
    if (n.driver === 'bridge' && (n.mode === 'nat' || n.mode === 'routed' || n.mode === 'isolated')) {
      for (const s of n.subnets) {
        if (!s.gateway) continue;
        const g = parseAddress(s.gateway);
        const sub = parseCidr(s.cidr);
        if (!cidrContains(sub, g.family, g.value)) {
          // An IPv6 link-local gateway (fe80::1): the host answers as it on the bridge, and with no
          // address inside the subnet the kernel makes no route to it, so ipvisor routes the subnet.
          if (g.family === 6 && g.value >> 118n === 0x3fan) {
            wanted.push({ dev: n.bridge, cidr: `${formatAddress(6, g.value)}/64`, family: 6, why: `link-local gateway of ${n.name} ${s.cidr}` });
            if (facts.links[n.bridge]?.adminUp !== false) plan.routes.push({ dst: s.cidr, family: 6, dev: n.bridge, via: null, metric: null, why: `subnet of ${n.name} (link-local gateway)` });
          }
          continue;
        }
        wanted.push({ dev: n.bridge, cidr: `${s.gateway}/${sub.prefixLength}`, family: s.family, why: `gateway of ${n.name} ${s.cidr}` });
      }
    }
    for (const h of n.hostAddresses) {
      const p = parseCidr(h, 'hostAddress', { allowBare: true });
      wanted.push({ dev: n.bridge, cidr: `${formatAddress(p.family, p.address)}/${p.prefixLength}`, family: p.family, why: `host address of ${n.name}` });
    }
    const seen = new Set<string>();
    for (const w of wanted) if (!seen.has(w.cidr)) (seen.add(w.cidr), plan.addresses.push(w));

    if (ownsFirewall(n) && (n.mode === 'nat' || n.mode === 'routed')) {
      if (n.subnets.some((s) => s.family === 4)) sysctls.set('net.ipv4.ip_forward', '1');
      if (n.subnets.some((s) => s.family === 6)) sysctls.set('net.ipv6.conf.all.forwarding', '1');
    }
    if (ownsFirewall(n) && n.mode === 'nat') {
      plan.nft.inet.nat_bridges.push(`"${n.bridge}"`);
      plan.nft.inet.nat_same_bridge.push(`"${n.bridge}" . "${n.bridge}"`);
      for (const s of n.subnets) if (s.family === 4) plan.nft.inet.nat4.push(s.cidr);
    }
  }

  // Routed addresses and prefixes: route to the bridge, accept both ways, proxy ARP/NDP on the uplink.
  // A bridge that is administratively down takes addresses but no routes ("Nexthop device is not
  // up"): its routes wait, so the rest of the plan still applies.
  const routable = (n: Network): boolean => facts.links[n.bridge!]?.adminUp !== false;
  const downWarned = new Set<string>();
  const routeWaits = (n: Network): boolean => {
    if (routable(n)) return false;
    if (!downWarned.has(n.uuid)) plan.warnings.push(`network ${n.name}: bridge ${n.bridge} is down; its routes wait until it is up`);
    downWarned.add(n.uuid);
    return true;
  };
  for (const a of routed) {
    const n = networks.get(a.networkUuid);
    if (!n || !n.bridge || !bridgeUp(n)) continue;
    if (routeWaits(n)) continue;
    const cidr = hostCidr(a);
    const address = cidr.split('/')[0];
    // A routed prefix is a network behind the VM: its next hop is the VIF's primary address of the
    // family (on-link, every address of the prefix would need the VM to answer ARP/ND for it). A
    // single address stays on-link. Without a primary address the prefix waits on-link, warned.
    let via: string | null = null;
    if (a.prefixLength < (a.family === 4 ? 32 : 128) && a.vifUuid) {
      via = primaryOf.get(`${a.vifUuid}/${a.family}`) ?? null;
      if (!via) plan.warnings.push(`network ${n.name}: routed prefix ${cidr} has no next hop (its VIF has no primary IPv${a.family} address); routed on-link`);
    }
    plan.routes.push({ dst: cidr, family: a.family, dev: n.bridge, via, metric: null, why: via ? `routed to ${n.name} via the VIF's primary address` : `routed to ${n.name}` });
    (a.family === 4 ? plan.nft.inet.routed4 : plan.nft.inet.routed6).push(setAddr(cidr));
    sysctls.set(a.family === 4 ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding', '1');
    if (n.uplink && a.prefixLength === (a.family === 4 ? 32 : 128)) {
      if (!facts.links[n.uplink]) plan.warnings.push(`network ${n.name}: uplink ${n.uplink} is not on this host; no proxy ARP/NDP`);
      else {
        plan.proxyNeighbours.push({ dev: n.uplink, address, family: a.family });
        if (a.family === 6) sysctls.set(interfaceSysctl(`net.ipv6.conf`, n.uplink, 'proxy_ndp'), '1');
        // the kernel delays proxy answers by a random 0-0.8 s by default (proxy_delay): answer at once
        sysctls.set(interfaceSysctl(`net.ipv${a.family}.neigh`, n.uplink, 'proxy_delay'), '0');
      }
    }
    if (libvirtFirewalled(n)) {
      const ipt = (dir: string[]): PlannedIptablesRule => ({
        family: a.family,
        args: [...dir, '-m', 'comment', '--comment', IPTABLES_COMMENT, '-j', 'ACCEPT'],
      });
      plan.iptablesForward.push(ipt(['-d', cidr, '-o', n.bridge]), ipt(['-s', cidr, '-i', n.bridge]));
    }
  }
  plan.nft.inet.routed4 = withoutOverlaps(plan.nft.inet.routed4);
  plan.nft.inet.routed6 = withoutOverlaps(plan.nft.inet.routed6);
  plan.nft.inet.nat4 = withoutOverlaps(plan.nft.inet.nat4);

  // Per-VIF anti-spoofing: elements of the bridge table's sets.
  const vmHost = new Map(snapshot.vms.map((v) => [v.uuid, v.host]));
  // An interface name belongs to one VIF at a time; when a stale binding lingers (a VM stopped
  // without its unbind), the most recent binding is the true one.
  const ifnameOwner = new Map<string, Vif>();
  for (const vif of snapshot.vifs) {
    if (!vif.ifname || (facts.hostname && vmHost.get(vif.vmUuid) !== facts.hostname)) continue;
    const cur = ifnameOwner.get(vif.ifname);
    const bound = (v: Vif) => v.boundAt ?? v.updatedAt;
    if (!cur || bound(vif) > bound(cur) || (bound(vif) === bound(cur) && vif.uuid < cur.uuid)) ifnameOwner.set(vif.ifname, vif);
  }
  for (const vif of [...snapshot.vifs].sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0))) {
    const n = networks.get(vif.networkUuid);
    if (!n) continue;
    const assigned = byVif.get(vif.uuid) ?? [];
    const locking = effectiveLocking(vif, n, assigned.length);
    const allowed = assigned.map(hostCidr).sort();
    const entry: VifEnforcement = { vifUuid: vif.uuid, vmUuid: vif.vmUuid, device: vif.device, networkUuid: n.uuid, ifname: vif.ifname, mac: vif.mac, locking, allowed, enforced: false };
    plan.vifs.push(entry);
    if (!vif.ifname) continue;
    if (n.driver === 'xapi') continue; // Open vSwitch: locking goes through XAPI
    if (facts.hostname && vmHost.get(vif.vmUuid) !== facts.hostname) continue; // runs on another host
    if (!isValidIfname(vif.ifname)) {
      plan.warnings.push(`vif ${vif.uuid}: ifname '${vif.ifname}' is not a valid interface name; not enforced`);
      continue;
    }
    const owner = ifnameOwner.get(vif.ifname);
    if (owner && owner.uuid !== vif.uuid) {
      plan.warnings.push(`vif ${vif.uuid}: ifname ${vif.ifname} was bound to vif ${owner.uuid} more recently; this stale binding is not enforced`);
      continue;
    }
    if (!isCanonicalMac(vif.mac)) plan.warnings.push(`vif ${vif.uuid}: MAC '${vif.mac}' is not a valid MAC address; enforced as disabled`);
    addVifElements(plan.nft, vif, locking, allowed);
    entry.enforced = true;
  }

  // Taps whose facts could not be recorded (an invalid MAC ...): nothing passes until they can be.
  for (const q of snapshot.quarantinedTaps ?? []) {
    const n = networks.get(q.networkUuid);
    if (!n || n.driver === 'xapi' || !isValidIfname(q.ifname)) continue;
    const el = `"${q.ifname}"`;
    if (!plan.nft.bridge.disabled_ifs.includes(el)) plan.nft.bridge.disabled_ifs.push(el);
    plan.warnings.push(`tap ${q.ifname} on network ${n.name} is disabled: ${q.reason}`);
  }

  // ipvisor's own default route.
  const gw = settings.gateway;
  if (gw) {
    const via = parseAddress(gw.via, 'via');
    let ready = true;
    if (gw.whenUp) {
      const n = networks.get(gw.whenUp);
      const link = n?.bridge ? facts.links[n.bridge] : undefined;
      const hasAddr = !!link && link.addresses.some((c) => (c.includes(':') ? 6 : 4) === via.family);
      ready = !!link && link.up && hasAddr;
      if (!ready) plan.warnings.push(`default route via ${gw.via} waits for network ${n?.name ?? gw.whenUp} to be up with an IPv${via.family} address`);
    }
    // The kernel refuses a next hop that no up link reaches ("Nexthop has invalid gateway"), and
    // that would fail the whole batch: wait until one does (a link-local next hop cannot be checked).
    if (ready && !isLinkLocal6(via.family, via.value)) {
      const reachable = Object.values(facts.links).some((l) => l.up && l.addresses.some((c) => {
        if ((c.includes(':') ? 6 : 4) !== via.family) return false;
        const p = parseCidr(c, 'address', { allowBare: true });
        return cidrContains(p, via.family, via.value);
      }));
      if (!reachable) {
        ready = false;
        plan.warnings.push(`default route via ${gw.via} waits until a link that is up reaches ${gw.via}`);
      }
    }
    // a link-local next hop is only meaningful on a given link: the network's bridge
    const dev = isLinkLocal6(via.family, via.value) && gw.whenUp ? networks.get(gw.whenUp)?.bridge ?? null : null;
    if (ready) plan.routes.push({ dst: 'default', family: via.family, dev, via: formatAddress(via.family, via.value), metric: gw.metric, why: 'ipvisor gateway' });
  }

  // Management address narrowing (XCP-ng dom0 without a physical NIC).
  for (const nw of settings.narrow ?? []) {
    const a = parseAddress(nw.address, 'address');
    const full = a.family === 4 ? 32 : 128;
    const link = facts.links[nw.dev];
    if (!link) continue;
    for (const c of link.addresses) {
      const [addr, len] = c.split('/');
      if (addr === nw.address && Number(len) !== full) plan.narrowings.push({ dev: nw.dev, family: a.family, from: c, to: `${addr}/${full}` });
    }
  }

  plan.sysctls = [...sysctls].sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) => ({ key, value }));
  plan.routes.sort((a, b) => a.dst.localeCompare(b.dst));
  for (const k of Object.keys(plan.nft.bridge) as (keyof NftElements['bridge'])[]) plan.nft.bridge[k].sort();
  for (const k of Object.keys(plan.nft.inet) as (keyof NftElements['inet'])[]) plan.nft.inet[k].sort();
  return plan;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const isCanonicalMac = (mac: string): boolean => MAC_RE.test(mac.toLowerCase());

function addVifElements(nft: NftElements, vif: Vif, locking: LockingMode, allowed: string[]): void {
  const q = `"${vif.ifname}"`;
  // A MAC that is not one (a record from before entry validation, like the probe's): nothing passes,
  // rather than text nft would read as syntax (the renderer would refuse it anyway).
  if (!isCanonicalMac(vif.mac)) locking = 'disabled';
  if (locking === 'unlocked') return;
  if (locking === 'disabled') {
    nft.bridge.disabled_ifs.push(q);
    return;
  }
  nft.bridge.locked_ifs.push(q);
  nft.bridge.vif_mac.push(`${q} . ${vif.mac.toLowerCase()}`);
  const v4 = withoutOverlaps(allowed.filter((c) => !c.includes(':')));
  const v6 = withoutOverlaps(allowed.filter((c) => c.includes(':')));
  for (const c of v4) (c.endsWith('/32') ? nft.bridge.vif_ip4 : nft.bridge.vif_net4).push(`${q} . ${setAddr(c)}`);
  for (const c of v6) {
    const single = c.endsWith('/128');
    (single ? nft.bridge.vif_ip6 : nft.bridge.vif_net6).push(`${q} . ${setAddr(c)}`);
    (single ? nft.bridge.vif_nd6 : nft.bridge.vif_ndnet6).push(nd6Element(vif.ifname!, c));
  }
}

/** Elements of one VIF only (the fast one-VIF change path). */
export function vifElements(vif: Vif, locking: LockingMode, allowed: string[]): NftElements {
  const nft = emptyElements();
  if (vif.ifname && isValidIfname(vif.ifname)) addVifElements(nft, vif, locking, allowed);
  return nft;
}
