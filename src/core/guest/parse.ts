// network_data.json (as real producers emit it: Nova, Ironic, glean fixtures, cloud-init tests) -> the IR.
// Every quirk is accepted here so the renderers never see one; invalid input fails with the element named.
import { invalid } from '../model/errors.js';
import { factLabel, isValidIfname } from '../model/validate.js';
import type { Family } from '../model/types.js';
import { BITS, formatAddress, formatCidr, hostMask, isLinkLocal6, parseAddress } from '../ipam/addr.js';
import { bondOptionSpec, LACP_RATES, NUMERIC_BOND_MODES, XMIT_HASH_POLICIES } from './bond.js';
import { BOND_MODES, type BondMode, type BondOption, type GuestDns, type GuestInterface, type GuestNetState, type GuestRoute } from './ir.js';

export interface ParseOptions {
  /** MAC (any case/separator) -> guest interface name: from --nic, else from the guest agent. */
  nicNames?: Record<string, string>;
}

type Json = Record<string, unknown>;

const BOND_LINK_KEYS = new Set(['bond_links', 'bond_mode']);
/** A guest interface name: the one interface-name rule (model/validate.ts), and no '@', '+' or leading
 * '.'/'-', so it is safe in every rendered format (scripts included). */
const isGuestIfname = (name: string): boolean => isValidIfname(name) && /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name);

/** MACs in network_data.json: any case and separator (guest MACs need not be a VIF's unicast ones). */
export function normalizeMac(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(value)) {
    throw invalid(field, `'${factLabel(value, 64)}' is not a MAC address`);
  }
  return value.toLowerCase().replace(/-/g, ':');
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function array(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalid(field, 'expected a list');
  return v;
}

function intIn(v: unknown, field: string, min: number, max: number): number {
  if (v === undefined || v === null) throw invalid(field, `required: an integer between ${min} and ${max}`);
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(field, `'${String(v)}' is not an integer between ${min} and ${max}`);
  }
  return n;
}

/** Prefix length from a netmask in any form real data uses; null when absent or "". */
export function prefixFromMask(mask: unknown, family: Family, field: string): number | null {
  if (mask === undefined || mask === null || mask === '') return null;
  if (typeof mask === 'number' || (typeof mask === 'string' && /^\d{1,3}$/.test(mask))) {
    return intIn(mask, field, 0, BITS[family]);
  }
  if (typeof mask !== 'string') throw invalid(field, 'expected a netmask');
  const m = parseAddress(mask, field);
  if (m.family !== family) throw invalid(field, `'${mask}' is an IPv${m.family} mask on an IPv${family} network`);
  const inverted = m.value ^ hostMask(family, 0);
  // contiguous iff the host part (inverted mask) is 2^k - 1
  if ((inverted & (inverted + 1n)) !== 0n) throw invalid(field, `'${mask}' is not a contiguous mask`);
  return BITS[family] - inverted.toString(2).replace(/^0+/, '').length;
}

interface ParsedLink {
  index: number;
  raw: Json;
  id: string;
  kind: 'physical' | 'bond' | 'vlan';
}

function emptyDns(): GuestDns {
  return { nameservers: [], search: [] };
}

function addDns(dns: GuestDns, address: unknown, field: string): void {
  const a = parseAddress(String(address), field);
  const text = formatAddress(a.family, a.value);
  if (!dns.nameservers.includes(text)) dns.nameservers.push(text);
}

function addSearch(dns: GuestDns, search: unknown, field: string): void {
  const list = typeof search === 'string' ? search.split(/[\s,]+/).filter(Boolean) : array(search, field);
  list.forEach((s, i) => {
    if (typeof s !== 'string' || !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/.test(s)) {
      throw invalid(typeof search === 'string' ? field : `${field}[${i}]`, `'${String(s)}' is not a DNS search domain`);
    }
    if (!dns.search.includes(s)) dns.search.push(s);
  });
}

function readServices(services: unknown, field: string, dns: GuestDns): void {
  array(services, field).forEach((s, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(s)) throw invalid(f, 'expected an object');
    if (s.type !== 'dns') return; // other service types carry nothing a guest network config needs
    if (s.address !== undefined) addDns(dns, s.address, `${f}.address`);
    if (s.search !== undefined) addSearch(dns, s.search, `${f}.search`);
  });
}

function linkKind(raw: Json, field: string): 'physical' | 'bond' | 'vlan' {
  if (raw.type === 'bond') return 'bond';
  if (raw.type === 'vlan') return 'vlan';
  // phy and every VIF type Nova passes through (bridge, ovs, tap, vif, ...), null, "physical": a NIC.
  if (raw.type !== undefined && raw.type !== null && typeof raw.type !== 'string') throw invalid(`${field}.type`, 'expected a string');
  return 'physical';
}

function bondMode(v: unknown, field: string): BondMode {
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string') throw invalid(field, 'required: a bonding mode');
  if (NUMERIC_BOND_MODES[s]) return NUMERIC_BOND_MODES[s];
  if ((BOND_MODES as readonly string[]).includes(s)) return s as BondMode;
  throw invalid(field, `'${s}' is not a bonding mode (${BOND_MODES.join(', ')} or 0-6)`);
}

function bondOptions(raw: Json, field: string): BondOption[] {
  const out: BondOption[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (!key.startsWith('bond_') || BOND_LINK_KEYS.has(key)) continue;
    const name = key.slice('bond_'.length);
    const f = `${field}.${key}`;
    const spec = bondOptionSpec(name);
    if (!spec) throw invalid(f, 'unknown bonding option');
    if (value === null || value === undefined) continue;
    let text: string;
    if (spec.kind === 'int' || spec.kind === 'ms') text = String(intIn(value, f, 0, 2 ** 31 - 1));
    else if (spec.kind === 'list') {
      const list = Array.isArray(value) ? value : String(value).split(/[\s,]+/).filter(Boolean);
      text = list.map((a, i) => formatAddress(4, parseAddress(String(a), `${f}[${i}]`).value)).join(',');
    } else {
      text = String(value);
      if (!/^[A-Za-z0-9_.+-]+$/.test(text)) throw invalid(f, `'${text}' is not a valid value`);
      if (name === 'xmit_hash_policy' && !XMIT_HASH_POLICIES.includes(text)) {
        throw invalid(f, `'${text}' is not a transmit hash policy (${XMIT_HASH_POLICIES.join(', ')})`);
      }
      if (name === 'lacp_rate') {
        if (text === '0') text = 'slow';
        if (text === '1') text = 'fast';
        if (!LACP_RATES.includes(text)) throw invalid(f, `'${text}' is not a LACP rate (slow, fast)`);
      }
    }
    out.push({ name, value: text });
  }
  return out;
}

interface Subnet {
  family: Family;
  network: bigint;
  prefixLength: number;
}

/** Parses a network's address: "/NN" inside ip_address wins, then `prefix`, then `netmask`, then /24 or /64. */
function networkAddress(net: Json, family: Family, field: string): { address: string; prefixLength: number; subnet: Subnet } {
  const raw = net.ip_address;
  if (typeof raw !== 'string' || raw === '') throw invalid(`${field}.ip_address`, 'required for a static network');
  const [addrText, lenText] = raw.split('/', 2) as [string, string | undefined];
  const a = parseAddress(addrText, `${field}.ip_address`);
  if (a.family !== family) throw invalid(`${field}.ip_address`, `'${raw}' is not an IPv${family} address`);
  let prefixLength: number | null = null;
  if (lenText !== undefined) prefixLength = intIn(lenText, `${field}.ip_address`, 0, BITS[family]);
  else if (net.prefix !== undefined && net.prefix !== null && net.prefix !== '') prefixLength = intIn(net.prefix, `${field}.prefix`, 0, BITS[family]);
  else prefixLength = prefixFromMask(net.netmask, family, `${field}.netmask`);
  prefixLength ??= family === 4 ? 24 : 64;
  const network = a.value & ~hostMask(family, prefixLength);
  return { address: formatAddress(family, a.value), prefixLength, subnet: { family, network, prefixLength } };
}

type NetKind = { family: Family; mode: 'static' | 'dhcp4' | 'slaac' | 'stateless' | 'stateful' };

function networkKind(type: unknown, field: string): NetKind {
  switch (type) {
    case 'ipv4':
    case 'static':
      return { family: 4, mode: 'static' };
    case 'ipv4_dhcp':
      return { family: 4, mode: 'dhcp4' };
    case 'ipv6':
    case 'static6':
      return { family: 6, mode: 'static' };
    case 'ipv6_slaac':
      return { family: 6, mode: 'slaac' };
    case 'ipv6_dhcpv6-stateless':
    case 'ipv6_dhcpv6_stateless':
      return { family: 6, mode: 'stateless' };
    case 'ipv6_dhcp':
    case 'ipv6_dhcpv6-stateful':
    case 'ipv6_dhcpv6_stateful':
      return { family: 6, mode: 'stateful' };
    default:
      throw invalid(field, `'${String(type)}' is not a network type (ipv4, ipv4_dhcp, ipv6, ipv6_dhcp, ipv6_slaac, ipv6_dhcpv6-stateless, ipv6_dhcpv6-stateful)`);
  }
}

interface PendingRoute {
  iface: GuestInterface;
  route: Omit<GuestRoute, 'onLink'>;
  field: string;
}

function readRoute(r: unknown, family: Family, field: string): Omit<GuestRoute, 'onLink'> & { dnsField?: string } {
  if (!isObject(r)) throw invalid(field, 'expected an object');
  let prefixLength: number;
  let destText: string;
  if (typeof r.destination === 'string' && r.network === undefined) {
    // upstream cloud-init also accepts {destination: "CIDR"}
    [destText] = r.destination.split('/', 1) as [string];
    const len = r.destination.includes('/') ? r.destination.split('/')[1] : undefined;
    prefixLength = len !== undefined ? intIn(len, `${field}.destination`, 0, BITS[family]) : BITS[family];
  } else {
    if (typeof r.network !== 'string') throw invalid(`${field}.network`, 'required: the destination network');
    const [n, len] = r.network.split('/', 2) as [string, string | undefined];
    destText = n;
    const p = len !== undefined ? intIn(len, `${field}.network`, 0, BITS[family]) : prefixFromMask(r.netmask, family, `${field}.netmask`);
    prefixLength = p ?? BITS[family];
  }
  const dest = parseAddress(destText, `${field}.network`);
  if (dest.family !== family) throw invalid(`${field}.network`, `'${destText}' is not an IPv${family} address`);
  if (typeof r.gateway !== 'string') throw invalid(`${field}.gateway`, 'required');
  const gw = parseAddress(r.gateway, `${field}.gateway`);
  if (gw.family !== family) throw invalid(`${field}.gateway`, `'${r.gateway}' is not an IPv${family} address`);
  const metric = r.metric === undefined || r.metric === null ? null : intIn(r.metric, `${field}.metric`, 0, 2 ** 32 - 1);
  // host bits in the destination are cleared: the kernel and every renderer want the network address
  const network = dest.value & ~hostMask(family, prefixLength);
  return { family, destination: formatCidr(family, network, prefixLength), gateway: formatAddress(family, gw.value), metric };
}

export function parseNetworkData(doc: unknown, opts: ParseOptions = {}): GuestNetState {
  if (!isObject(doc)) throw invalid('network_data', 'expected a JSON object');
  const nicNames = new Map<string, string>();
  for (const [mac, name] of Object.entries(opts.nicNames ?? {})) nicNames.set(normalizeMac(mac, `nic ${name}`), name);

  // links: ids, kinds, MACs
  const links: ParsedLink[] = [];
  const byId = new Map<string, ParsedLink>();
  array(doc.links, 'links').forEach((raw, index) => {
    const field = `links[${index}]`;
    if (!isObject(raw)) throw invalid(field, 'expected an object');
    if (typeof raw.id !== 'string' || raw.id === '') throw invalid(`${field}.id`, 'required: a link id');
    if (byId.has(raw.id)) throw invalid(`${field}.id`, `duplicate link id '${raw.id}'`);
    const l: ParsedLink = { index, raw, id: raw.id, kind: linkKind(raw, field) };
    links.push(l);
    byId.set(l.id, l);
  });

  const interfaces: GuestInterface[] = [];
  const ifaceById = new Map<string, GuestInterface>();
  const usedNames = new Map<string, string>();
  const claim = (name: string, field: string): string => {
    if (!isGuestIfname(name)) throw invalid(field, `'${factLabel(name, 64)}' is not a valid interface name`);
    const prev = usedNames.get(name);
    if (prev !== undefined) throw invalid(field, `interface name '${name}' is already used by ${prev}`);
    usedNames.set(name, field);
    return name;
  };

  // Names are decided before any interface is built: explicit and guest-reported names first,
  // then the link's own `name`, then ethN / bondN in link order.
  const macs = new Map<ParsedLink, string | null>();
  for (const l of links) {
    const f = `links[${l.index}]`;
    const macRaw = l.raw.ethernet_mac_address ?? (l.kind === 'vlan' ? l.raw.vlan_mac_address : undefined);
    macs.set(l, macRaw === undefined || macRaw === null || macRaw === '' ? null : normalizeMac(macRaw, `${f}.ethernet_mac_address`));
  }
  const names = new Map<ParsedLink, string>();
  for (const l of links) {
    if (l.kind !== 'physical') continue;
    const mac = macs.get(l);
    const given = mac ? nicNames.get(mac) : undefined;
    if (given !== undefined) names.set(l, claim(given, `links[${l.index}] (nic ${given}=${mac})`));
  }
  for (const l of links) {
    if (names.has(l) || typeof l.raw.name !== 'string' || l.raw.name === '') continue;
    if (l.kind === 'vlan') continue; // after parents are named
    names.set(l, claim(l.raw.name, `links[${l.index}].name`));
  }
  let eth = 0;
  let bondN = 0;
  let nic = -1;
  for (const l of links) {
    if (l.kind === 'physical') nic++;
    if (names.has(l) || l.kind === 'vlan') continue;
    const prefix = l.kind === 'bond' ? 'bond' : 'eth';
    // the Nth NIC is ethN even when NICs before it were named (--nic): the kernel's order
    let n = l.kind === 'bond' ? bondN : Math.max(eth, nic);
    while (usedNames.has(`${prefix}${n}`)) n++;
    names.set(l, claim(`${prefix}${n}`, `links[${l.index}]`));
    if (l.kind === 'bond') bondN = n + 1;
    else eth = n + 1;
  }

  // physical links first, then bonds, then VLANs, so members and parents exist whatever the order
  const rank = { physical: 0, bond: 1, vlan: 2 } as const;
  const built = new Map<ParsedLink, GuestInterface>();
  for (const l of [...links].sort((a, b) => rank[a.kind] - rank[b.kind] || a.index - b.index)) {
    const f = `links[${l.index}]`;
    const mtu = l.raw.mtu === undefined || l.raw.mtu === null ? null : intIn(l.raw.mtu, `${f}.mtu`, 68, 65535);
    const iface: GuestInterface = {
      linkId: l.id,
      name: '',
      type: l.kind,
      mac: macs.get(l) ?? null,
      mtu,
      bond: null,
      vlan: null,
      bondMaster: null,
      dhcp4: false,
      ipv6: null,
      addresses: [],
      routes: [],
      dns: emptyDns(),
    };
    if (l.kind === 'bond') {
      const members = array(l.raw.bond_links, `${f}.bond_links`);
      if (members.length === 0) throw invalid(`${f}.bond_links`, 'a bond needs at least one member link');
      const memberNames = members.map((m, i) => {
        const mf = `${f}.bond_links[${i}]`;
        const ml = typeof m === 'string' ? byId.get(m) : undefined;
        if (!ml) throw invalid(mf, `no link '${String(m)}' in links`);
        if (ml.kind !== 'physical') throw invalid(mf, `'${ml.id}' is a ${ml.kind}; bond members must be physical links`);
        const mi = ifaceById.get(ml.id)!;
        if (mi.bondMaster) throw invalid(mf, `'${ml.id}' is already a member of bond '${mi.bondMaster}'`);
        return mi;
      });
      iface.name = names.get(l)!;
      iface.bond = { mode: bondMode(l.raw.bond_mode, `${f}.bond_mode`), members: memberNames.map((m) => m.name), options: bondOptions(l.raw, f) };
      const primary = iface.bond.options.find((o) => o.name === 'primary');
      if (primary && !iface.bond.members.includes(primary.value)) {
        throw invalid(`${f}.bond_primary`, `'${primary.value}' is not a member of this bond`);
      }
      for (const m of memberNames) m.bondMaster = iface.name;
      // The kernel gives members the bond's MTU when they are enslaved: a bond without one would
      // pull jumbo members (Ironic's sample: 9000) down to 1500, so it takes their common MTU.
      const memberMtus = new Set(memberNames.map((m) => m.mtu));
      if (iface.mtu === null && memberMtus.size === 1) iface.mtu = memberNames[0]!.mtu;
    } else if (l.kind === 'vlan') {
      const parent = typeof l.raw.vlan_link === 'string' ? ifaceById.get(l.raw.vlan_link) : undefined;
      if (!parent) {
        throw invalid(`${f}.vlan_link`, byId.get(String(l.raw.vlan_link))?.kind === 'vlan' ? 'a VLAN cannot sit on another VLAN' : `no link '${String(l.raw.vlan_link)}' in links`);
      }
      if (parent.bondMaster) throw invalid(`${f}.vlan_link`, `'${parent.linkId}' is a member of bond '${parent.bondMaster}'; put the VLAN on the bond`);
      const id = intIn(l.raw.vlan_id, `${f}.vlan_id`, 1, 4094);
      if (mtu !== null && parent.mtu !== null && mtu > parent.mtu) {
        throw invalid(`${f}.mtu`, `${mtu} is larger than the MTU of its parent '${parent.linkId}' (${parent.mtu}); the kernel refuses that`);
      }
      iface.vlan = { id, parent: parent.name };
      let name = typeof l.raw.name === 'string' && l.raw.name !== '' ? l.raw.name : `${parent.name}.${id}`;
      if (name.length > 15 && l.raw.name === undefined) name = `vlan${id}`;
      iface.name = claim(name, typeof l.raw.name === 'string' ? `${f}.name` : f);
    } else {
      iface.name = names.get(l)!;
    }
    built.set(l, iface);
    ifaceById.set(l.id, iface);
  }
  for (const l of links) interfaces.push(built.get(l)!);

  // networks: addresses, DHCP modes, routes, DNS
  const warnings: string[] = [];
  const subnets = new Map<GuestInterface, Subnet[]>();
  const pending: PendingRoute[] = [];
  const v6Modes = new Map<GuestInterface, Set<string>>();
  array(doc.networks, 'networks').forEach((net, index) => {
    const field = `networks[${index}]`;
    if (!isObject(net)) throw invalid(field, 'expected an object');
    const linked = typeof net.link === 'string' ? ifaceById.get(net.link) : undefined;
    if (!linked) throw invalid(`${field}.link`, `no link '${String(net.link)}' in links`);
    let iface = linked;
    if (linked.bondMaster) {
      // Ironic's sample does this. A member's traffic arrives on its bond, so the addresses can only
      // work there; networkd would drop them and the kernel would use them on a port.
      iface = interfaces.find((i) => i.type === 'bond' && i.name === linked.bondMaster)!;
      warnings.push(`${field}.link: '${linked.linkId}' is a member of bond '${iface.linkId}'; its ${String(net.type)} network is configured on the bond`);
    }
    const kind = networkKind(net.type, `${field}.type`);
    if (kind.mode === 'dhcp4') iface.dhcp4 = true;
    let subnet: Subnet | null = null;
    if (kind.mode === 'static') {
      const a = networkAddress(net, kind.family, field);
      if (!iface.addresses.some((x) => x.address === a.address)) iface.addresses.push({ family: kind.family, address: a.address, prefixLength: a.prefixLength });
      subnet = a.subnet;
    } else if (kind.family === 6 && typeof net.ip_address === 'string' && net.ip_address !== '') {
      // Nova sends the SLAAC/DHCPv6 address too; the guest gets it by itself. It is validated, but
      // it does not make a gateway reachable: until the router's prefix or the DHCPv6 lease is
      // there the kernel rejects a route through it (networkd then never retries it), so such a
      // gateway is marked on-link below, which it is.
      networkAddress(net, 6, field);
    }
    if (subnet) subnets.set(iface, [...(subnets.get(iface) ?? []), subnet]);
    if (kind.family === 6) {
      const modes = v6Modes.get(iface) ?? new Set<string>();
      modes.add(kind.mode);
      v6Modes.set(iface, modes);
    }
    const raMode = kind.family === 6 && kind.mode !== 'static';
    const routes = array(net.routes, `${field}.routes`);
    let hasDefault = false;
    routes.forEach((r, ri) => {
      const rf = `${field}.routes[${ri}]`;
      const route = readRoute(r, kind.family, rf);
      if (isObject(r) && r.services !== undefined) readServices(r.services, `${rf}.services`, iface.dns);
      const isDefault = route.destination.endsWith('/0');
      if (isDefault) hasDefault = true;
      // DHCPv4 supplies routes itself; with router advertisements the default route comes from the router
      if (kind.mode === 'dhcp4' || (raMode && isDefault)) return;
      pending.push({ iface, route, field: rf });
    });
    if (net.gateway !== undefined && net.gateway !== null && net.gateway !== '' && kind.mode === 'static' && !hasDefault) {
      // non-standard network-level gateway (OTC, cloud-init tests): the network's default route
      const gw = parseAddress(String(net.gateway), `${field}.gateway`);
      if (gw.family !== kind.family) throw invalid(`${field}.gateway`, `'${String(net.gateway)}' is not an IPv${kind.family} address`);
      pending.push({ iface, route: { family: kind.family, destination: kind.family === 4 ? '0.0.0.0/0' : '::/0', gateway: formatAddress(kind.family, gw.value), metric: null }, field: `${field}.gateway` });
    }
    if (net.services !== undefined) readServices(net.services, `${field}.services`, iface.dns);
    if (net.dns_nameservers !== undefined) array(net.dns_nameservers, `${field}.dns_nameservers`).forEach((a, i) => addDns(iface.dns, a, `${field}.dns_nameservers[${i}]`));
    if (net.dns_search !== undefined) addSearch(iface.dns, net.dns_search, `${field}.dns_search`);
  });

  for (const [iface, modes] of v6Modes) {
    const ra = modes.has('slaac') || modes.has('stateless') || modes.has('stateful');
    iface.ipv6 = { acceptRa: ra, dhcp: modes.has('stateful') ? 'stateful' : modes.has('stateless') ? 'stateless' : 'none' };
  }

  // Routes: exact duplicates dropped; several routes to one destination (several default routes)
  // get distinct metrics so the result is valid everywhere instead of a config the OS rejects.
  const seen = new Set<string>();
  const unique = pending.filter((p) => {
    const key = `${p.iface.name} ${p.route.destination} ${p.route.gateway} ${p.route.metric}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const perDest = new Map<string, PendingRoute[]>();
  for (const p of unique) perDest.set(p.route.destination, [...(perDest.get(p.route.destination) ?? []), p]);
  for (const group of perDest.values()) {
    if (group.length < 2) continue;
    const used = new Set(group.map((p) => p.route.metric).filter((m) => m !== null));
    let next = 100;
    for (const p of group) {
      if (p.route.metric !== null) continue;
      while (used.has(next)) next += 100;
      p.route.metric = next;
      used.add(next);
    }
    const metrics = group.map((p) => `${p.iface.name}:${p.route.metric}`);
    if (new Set(metrics).size !== metrics.length) {
      throw invalid(group[1]!.field, `two routes to ${group[1]!.route.destination} on the same interface with the same metric`);
    }
  }
  for (const p of unique) {
    const gw = parseAddress(p.route.gateway, p.field);
    const onLink =
      !(gw.family === 6 && isLinkLocal6(6, gw.value)) &&
      !(subnets.get(p.iface) ?? []).some((s) => s.family === gw.family && (gw.value & ~hostMask(s.family, s.prefixLength)) === s.network);
    p.iface.routes.push({ ...p.route, onLink });
  }

  const dns = emptyDns();
  readServices(doc.services, 'services', dns);
  return { interfaces, dns, warnings };
}
