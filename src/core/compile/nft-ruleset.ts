// Pure: the nftables ruleset ipvisor owns. The skeleton (tables, sets, a handful of rules) is
// constant; everything per VIF or per network is an element of a named set, so a one-VIF change
// is an element add/delete, never a rule or chain change (anchors.md §4.2: per-VIF chains with
// anonymous sets took 12.7 s at 5,000 VIFs; named concatenated sets ~1 s at 20,000).
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { invalid } from '../model/errors.js';
import { factLabel, isValidIfname } from '../model/validate.js';

export const NFT_TABLE = 'ipvisor';

export interface NftElements {
  bridge: {
    /** VIFs in `locked` mode, by host interface name. */
    locked_ifs: string[];
    /** VIFs in `disabled` mode: nothing in, nothing out. */
    disabled_ifs: string[];
    vif_mac: string[];
    /** Single addresses live in hash sets (a one-VIF change needs no element cache, ~3 ms); */
    vif_ip4: string[];
    /** prefixes (routed prefixes) in interval sets. */
    vif_net4: string[];
    vif_ip6: string[];
    vif_net6: string[];
    /** Same as vif_ip6/vif_net6, keyed on the ICMPv6 ND target (raw payload: nft 1.0.6 has no `icmpv6 taddr`). */
    vif_nd6: string[];
    vif_ndnet6: string[];
  };
  inet: {
    routed4: string[];
    routed6: string[];
    /** IPv4 subnets of `nat` networks whose firewalling ipvisor owns (masqueraded). */
    nat4: string[];
    /** Bridges of those networks (new inbound connections dropped, both families). */
    nat_bridges: string[];
    /** `"br" . "br"` for each of them: traffic that enters and leaves the same NAT bridge (VM to
     * VM; with br_netfilter, bridged frames pass the inet forward hook with the bridge as both
     * interfaces) is accepted, whatever net.bridge.bridge-nf-call-iptables says. */
    nat_same_bridge: string[];
  };
}

export type NftFamily = keyof NftElements;

/** The 128-bit integer form nft prints for raw-payload set keys (vif_nd6). */
export function ipv6Hex(value: bigint): string {
  return '0x' + value.toString(16).padStart(32, '0');
}

export function emptyElements(): NftElements {
  return {
    bridge: { locked_ifs: [], disabled_ifs: [], vif_mac: [], vif_ip4: [], vif_net4: [], vif_ip6: [], vif_net6: [], vif_nd6: [], vif_ndnet6: [] },
    inet: { routed4: [], routed6: [], nat4: [], nat_bridges: [], nat_same_bridge: [] },
  };
}

const SET_DECLS: Record<NftFamily, Record<string, string>> = {
  bridge: {
    locked_ifs: 'type ifname;',
    disabled_ifs: 'type ifname;',
    vif_mac: 'type ifname . ether_addr;',
    vif_ip4: 'type ifname . ipv4_addr;',
    vif_net4: 'type ifname . ipv4_addr; flags interval;',
    vif_ip6: 'type ifname . ipv6_addr;',
    vif_net6: 'type ifname . ipv6_addr; flags interval;',
    vif_nd6: 'typeof iifname . @th,64,128;',
    vif_ndnet6: 'typeof iifname . @th,64,128; flags interval;',
  },
  inet: {
    routed4: 'type ipv4_addr; flags interval;',
    routed6: 'type ipv6_addr; flags interval;',
    nat4: 'type ipv4_addr; flags interval;',
    nat_bridges: 'type ifname;',
    nat_same_bridge: 'type ifname . ifname;',
  },
};

// ---------------------------------------------------------------------------------------------
// Defense in depth: whatever reaches the renderer, it writes only values of the set's type. Every
// fact is validated where it enters (model/validate.ts); this check makes a value that slipped
// through (a MAC carrying nft syntax, a quote in an interface name) an error instead of ruleset text.

type KeyType = 'ifname' | 'ether_addr' | 'ipv4_addr' | 'ipv6_addr' | 'th128';

const V4 = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
const V4_RE = new RegExp(`^${V4}$`);
const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const TH128_RE = /^0x[0-9a-f]{32}$/;

/** The key types of a set, from its declaration (one source: SET_DECLS). */
function keyTypes(decl: string): { keys: KeyType[]; interval: boolean } {
  const m = /^typeof\s+(.*?);|^type\s+(.*?);/.exec(decl);
  const spec = (m?.[1] ?? m?.[2] ?? '').trim();
  const keys = spec.split(' . ').map((k): KeyType => {
    if (k === 'ifname' || k === 'iifname' || k === 'oifname') return 'ifname';
    if (k === 'ether_addr' || k === 'ipv4_addr' || k === 'ipv6_addr') return k;
    if (k === '@th,64,128') return 'th128';
    throw new Error(`nft-ruleset: unknown set key type '${k}'`);
  });
  return { keys, interval: /flags\s+interval/.test(decl) };
}

function isV6(text: string): boolean {
  return /^[0-9a-f:.]+$/.test(text) && text.includes(':') && ipaddr.IPv6.isValid(text);
}

function scalarOk(type: KeyType, v: string): boolean {
  switch (type) {
    case 'ifname':
      return v.length > 2 && v.startsWith('"') && v.endsWith('"') && isValidIfname(v.slice(1, -1));
    case 'ether_addr':
      return MAC_RE.test(v);
    case 'ipv4_addr':
      return V4_RE.test(v);
    case 'ipv6_addr':
      return isV6(v);
    case 'th128':
      return TH128_RE.test(v);
  }
}

function componentOk(type: KeyType, v: string, interval: boolean): boolean {
  if (scalarOk(type, v)) return true;
  if (!interval || type === 'ifname' || type === 'ether_addr') return false;
  const slash = v.indexOf('/');
  if (slash > 0 && type !== 'th128') {
    const len = v.slice(slash + 1);
    const max = type === 'ipv4_addr' ? 32 : 128;
    return /^\d{1,3}$/.test(len) && Number(len) <= max && scalarOk(type, v.slice(0, slash));
  }
  const dash = v.indexOf('-');
  return dash > 0 && scalarOk(type, v.slice(0, dash)) && scalarOk(type, v.slice(dash + 1));
}

const KEY_TYPES = Object.fromEntries(
  (Object.keys(SET_DECLS) as NftFamily[]).map((f) => [f, Object.fromEntries(Object.entries(SET_DECLS[f]).map(([set, decl]) => [set, keyTypes(decl)]))]),
) as Record<NftFamily, Record<string, { keys: KeyType[]; interval: boolean }>>;

/** Throws VALIDATION unless `element` is a value of set `set`'s type (a set ipvisor declares). */
export function checkElement(family: NftFamily, set: string, element: string): void {
  const t = KEY_TYPES[family]?.[set];
  if (!t) throw invalid(`nft ${family} ${set}`, `not a set of ipvisor's ${family} table; refused`);
  const parts = typeof element === 'string' ? element.split(' . ') : [];
  const ok = parts.length === t.keys.length && parts.every((p, i) => componentOk(t.keys[i], p, t.interval));
  if (!ok) throw invalid(`nft ${family} ${set}`, `element '${factLabel(element, 80)}' is not of the set's type (${t.keys.join(' . ')}); refused`);
}

function checkElements(family: NftFamily, set: string, elements: readonly string[]): void {
  for (const e of elements) checkElement(family, set, e);
}

/** Chains and their rules, in order. Base chains carry their hook line first. */
const CHAINS: Record<NftFamily, Record<string, { hook?: string; rules: string[] }>> = {
  bridge: {
    prerouting: {
      hook: 'type filter hook prerouting priority -250; policy accept;',
      rules: ['iifname @disabled_ifs drop', 'iifname @locked_ifs jump locked_in'],
    },
    forward: { hook: 'type filter hook forward priority -250; policy accept;', rules: ['oifname @disabled_ifs drop'] },
    output: { hook: 'type filter hook output priority -250; policy accept;', rules: ['oifname @disabled_ifs drop'] },
    locked_in: {
      rules: [
        'iifname . ether saddr != @vif_mac drop',
        'ether type arp jump arp_in',
        'ether type ip jump ip4_in',
        'ether type ip6 jump ip6_in',
        // any other ethertype (VLAN tags, LLDP, ...) from a locked VIF
        'drop',
      ],
    },
    arp_in: {
      rules: [
        'iifname . arp saddr ether != @vif_mac drop',
        // ARP probes (RFC 5227) come from 0.0.0.0
        'arp saddr ip 0.0.0.0 accept',
        'iifname . arp saddr ip @vif_ip4 accept',
        'iifname . arp saddr ip @vif_net4 accept',
        'drop',
      ],
    },
    ip4_in: {
      rules: [
        // a DHCP server reply from a VM
        'udp sport 67 drop',
        'ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
        'iifname . ip saddr @vif_ip4 accept',
        'iifname . ip saddr @vif_net4 accept',
        'drop',
      ],
    },
    ip6_in: {
      rules: [
        'icmpv6 type { nd-router-advert, nd-redirect } drop',
        // a DHCPv6 server or relay reply from a VM
        'udp sport 547 drop',
        // duplicate address detection: only for the VIF's own addresses
        'ip6 saddr :: icmpv6 type nd-neighbor-solicit jump nd_target',
        'ip6 saddr :: icmpv6 type { mld-listener-report, mld2-listener-report } accept',
        'ip6 saddr :: drop',
        // link-local (fe80::/64, any interface id) or one of the VIF's addresses
        'ip6 saddr fe80::/64 jump ip6_ok',
        'iifname . ip6 saddr @vif_ip6 jump ip6_ok',
        'iifname . ip6 saddr @vif_net6 jump ip6_ok',
        'drop',
      ],
    },
    ip6_ok: {
      rules: ['icmpv6 type nd-neighbor-advert jump nd_target', 'accept'],
    },
    nd_target: {
      rules: [
        // link-local targets: fe80::/64, any interface id
        '@th,64,64 0xfe80000000000000 accept',
        'iifname . @th,64,128 @vif_nd6 accept',
        'iifname . @th,64,128 @vif_ndnet6 accept',
        'drop',
      ],
    },
  },
  inet: {
    forward: {
      hook: 'type filter hook forward priority filter - 10; policy accept;',
      rules: [
        'ip daddr @routed4 accept',
        'ip saddr @routed4 accept',
        'ip6 daddr @routed6 accept',
        'ip6 saddr @routed6 accept',
        // VM to VM on one NAT bridge (seen here when br_netfilter hands bridged frames to inet)
        'iifname . oifname @nat_same_bridge accept',
        // stateful inbound filter for NAT networks (IPv6 too, as IPv4 NAT implies)
        'oifname @nat_bridges ct state established,related accept',
        'oifname @nat_bridges drop',
      ],
    },
    postrouting: {
      hook: 'type nat hook postrouting priority srcnat + 10; policy accept;',
      rules: ['ip saddr @nat4 ip daddr != @nat4 ip daddr != { 224.0.0.0/24, 255.255.255.255 } masquerade'],
    },
  },
};

/** A chain whose name carries the skeleton's hash: present = the table has this skeleton. */
export function skeletonMarker(family: NftFamily): string {
  const h = createHash('sha256').update(JSON.stringify([SET_DECLS[family], CHAINS[family]])).digest('hex').slice(0, 12);
  return `skel_${h}`;
}

/** Chain name -> rule count, for verifying that nobody flushed a chain. */
export function expectedChains(family: NftFamily): Record<string, number> {
  const out: Record<string, number> = { [skeletonMarker(family)]: 0 };
  for (const [name, c] of Object.entries(CHAINS[family])) out[name] = c.rules.length;
  return out;
}

export function setNames(family: NftFamily): string[] {
  return Object.keys(SET_DECLS[family]);
}

/** The complete table, elements included, as `nft -f` input. */
export function renderTable(family: NftFamily, elements: NftElements): string {
  const lines: string[] = [`table ${family} ${NFT_TABLE} {`];
  const els = elements[family] as Record<string, string[]>;
  for (const [name, decl] of Object.entries(SET_DECLS[family])) {
    const e = els[name] ?? [];
    checkElements(family, name, e);
    lines.push(`\tset ${name} {`, `\t\t${decl}`);
    if (e.length) lines.push(`\t\telements = { ${e.join(',\n\t\t\t')} }`);
    lines.push('\t}');
  }
  lines.push(`\tchain ${skeletonMarker(family)} {`, '\t}');
  for (const [name, c] of Object.entries(CHAINS[family])) {
    lines.push(`\tchain ${name} {`);
    if (c.hook) lines.push(`\t\t${c.hook}`);
    for (const r of c.rules) lines.push(`\t\t${r}`);
    lines.push('\t}');
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Replaces the table atomically: the add/delete pair makes this work whether or not it exists. */
export function renderTableReplace(family: NftFamily, elements: NftElements): string {
  return `add table ${family} ${NFT_TABLE}\ndelete table ${family} ${NFT_TABLE}\n${renderTable(family, elements)}`;
}

export function renderTableDelete(family: NftFamily): string {
  return `add table ${family} ${NFT_TABLE}\ndelete table ${family} ${NFT_TABLE}\n`;
}

export interface ElementChange {
  family: NftFamily;
  set: string;
  add: string[];
  remove: string[];
}

/**
 * Element changes as nft commands. With `blind` (no observation of the current elements: the
 * one-VIF path), each removal is preceded by an add, so the delete cannot fail on a missing element.
 */
export function renderElementChanges(changes: ElementChange[], opts: { blind?: boolean } = {}): string {
  const out: string[] = [];
  for (const c of changes) {
    checkElements(c.family, c.set, c.remove);
    checkElements(c.family, c.set, c.add);
    const base = `${c.family} ${NFT_TABLE} ${c.set}`;
    if (c.remove.length) {
      if (opts.blind) out.push(`add element ${base} { ${c.remove.join(', ')} }`);
      out.push(`delete element ${base} { ${c.remove.join(', ')} }`);
    }
    if (c.add.length) out.push(`add element ${base} { ${c.add.join(', ')} }`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** Set-wise difference of wanted vs present elements (element text is canonical on both sides). */
export function diffElements(wanted: NftElements, present: NftElements, family: NftFamily): ElementChange[] {
  const out: ElementChange[] = [];
  const w = wanted[family] as Record<string, string[]>;
  const p = present[family] as Record<string, string[]>;
  for (const set of setNames(family)) {
    const ws = new Set(w[set] ?? []);
    const ps = new Set(p[set] ?? []);
    const add = [...ws].filter((e) => !ps.has(e));
    const remove = [...ps].filter((e) => !ws.has(e));
    if (add.length || remove.length) out.push({ family, set, add, remove });
  }
  return out;
}
