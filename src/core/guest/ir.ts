// The one intermediate representation of a guest's network (cloud-init's NetworkState idea):
// every network_data.json quirk is resolved by the parser, so the renderers only see this.
import type { Family } from '../model/types.js';

export const BOND_MODES = ['balance-rr', 'active-backup', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb'] as const;
export type BondMode = (typeof BOND_MODES)[number];

export interface GuestAddress {
  family: Family;
  /** Canonical address (RFC 5952 for IPv6). */
  address: string;
  prefixLength: number;
}

export interface GuestRoute {
  family: Family;
  /** Canonical CIDR, "0.0.0.0/0" / "::/0" for default routes. */
  destination: string;
  gateway: string;
  /** Set when several routes share a destination (several default routes), else as given. */
  metric: number | null;
  /** The gateway is outside every static subnet of the interface (the kernel needs "onlink"); on a
   * DHCP, DHCPv6 or RA network it is reachable only once the lease or prefix is there, so on-link too. */
  onLink: boolean;
}

export interface GuestDns {
  nameservers: string[];
  search: string[];
}

/** One kernel bonding option other than the mode, by its kernel (sysfs) name. */
export interface BondOption {
  name: string;
  value: string;
}

export interface GuestInterface {
  /** The network_data.json link id (networks[].link refers to it). */
  linkId: string;
  /** Interface name inside the guest. */
  name: string;
  type: 'physical' | 'bond' | 'vlan';
  /** Lower-case, colon-separated; null when the document has none. */
  mac: string | null;
  mtu: number | null;
  bond: { mode: BondMode; members: string[]; options: BondOption[] } | null;
  vlan: { id: number; parent: string } | null;
  /** Name of the bond this interface is a member of. */
  bondMaster: string | null;
  dhcp4: boolean;
  /** IPv6 configuration beyond static addresses; null = no IPv6 network on this link. */
  ipv6: { acceptRa: boolean; dhcp: 'none' | 'stateless' | 'stateful' } | null;
  addresses: GuestAddress[];
  routes: GuestRoute[];
  dns: GuestDns;
}

export interface GuestNetState {
  /** In link order: members before bonds, parents before VLANs (as the document lists them). */
  interfaces: GuestInterface[];
  dns: GuestDns;
  /** What the parser changed to make the document work (one line each, naming the element). */
  warnings: string[];
}

/** A renderer: pure, returns file paths (relative to the guest's root, or a script name) to contents. */
export type RenderedFiles = Record<string, string>;

export function defaultRoute(r: GuestRoute): boolean {
  return r.destination === '0.0.0.0/0' || r.destination === '::/0';
}

export function byName(state: GuestNetState, name: string): GuestInterface | undefined {
  return state.interfaces.find((i) => i.name === name);
}

/** Interface DNS plus the global list, without duplicates: for formats with only one place for DNS. */
export function mergedDns(...lists: GuestDns[]): GuestDns {
  const nameservers: string[] = [];
  const search: string[] = [];
  for (const l of lists) {
    for (const n of l.nameservers) if (!nameservers.includes(n)) nameservers.push(n);
    for (const s of l.search) if (!search.includes(s)) search.push(s);
  }
  return { nameservers, search };
}
