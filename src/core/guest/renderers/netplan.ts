// netplan v2 YAML. Physical NICs match by MAC and get set-name; bonds carry mode names (never the
// numbers netplan rejects) and every bonding option; per-interface DNS is kept.
import { stringify } from 'yaml';
import { bondOptionSpec } from '../bond.js';
import type { GuestInterface, GuestNetState, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER, interfaceDns } from './common.js';

export const NETPLAN_PATH = 'etc/netplan/50-ipvisor.yaml';

function num(v: string): number | string {
  return /^\d+$/.test(v) ? Number(v) : v;
}

export interface NetplanRenderOptions {
  /** netplan's backend; absent = netplan's default (networkd). Ubuntu desktops use NetworkManager. */
  netplanRenderer?: 'networkd' | 'NetworkManager';
}

export function renderNetplan(state: GuestNetState, opts: NetplanRenderOptions = {}): RenderedFiles {
  const carriers = globalDnsCarriers(state);
  const ethernets: Record<string, unknown> = {};
  const bonds: Record<string, unknown> = {};
  const vlans: Record<string, unknown> = {};
  for (const i of state.interfaces) {
    const c: Record<string, unknown> = {};
    if (i.type === 'physical' && i.mac) {
      c.match = { macaddress: i.mac };
      c['set-name'] = i.name;
    }
    if (i.type === 'bond') {
      c.interfaces = i.bond!.members;
      if (i.mac) c.macaddress = i.mac;
      const parameters: Record<string, unknown> = { mode: i.bond!.mode };
      for (const o of i.bond!.options) {
        const spec = bondOptionSpec(o.name)!;
        if (!spec.netplan) continue;
        parameters[spec.netplan] = spec.kind === 'list' ? o.value.split(',') : spec.kind === 'word' ? o.value : num(o.value);
      }
      c.parameters = parameters;
    }
    if (i.type === 'vlan') {
      c.id = i.vlan!.id;
      c.link = i.vlan!.parent;
    }
    if (i.mtu !== null) c.mtu = i.mtu;
    if (!i.bondMaster) addIp(c, state, i, carriers, opts);
    else c.dhcp4 = false;
    (i.type === 'bond' ? bonds : i.type === 'vlan' ? vlans : ethernets)[i.name] = c;
  }
  const network: Record<string, unknown> = { version: 2 };
  if (opts.netplanRenderer) network.renderer = opts.netplanRenderer;
  if (Object.keys(ethernets).length) network.ethernets = ethernets;
  if (Object.keys(bonds).length) network.bonds = bonds;
  if (Object.keys(vlans).length) network.vlans = vlans;
  return { [NETPLAN_PATH]: `# ${HEADER}\n` + stringify({ network }, { lineWidth: 0 }) };
}

function addIp(c: Record<string, unknown>, state: GuestNetState, i: GuestInterface, carriers: Set<GuestInterface>, opts: NetplanRenderOptions): void {
  c.dhcp4 = i.dhcp4;
  // netplan's NetworkManager backend has no SLAAC-only mode: accept-ra without dhcp6 becomes
  // "[ipv6] method=manual" without addresses; NetworkManager's method=auto follows the RA's flags
  const dhcp6 = i.ipv6 !== null && (i.ipv6.dhcp !== 'none' || (opts.netplanRenderer === 'NetworkManager' && i.ipv6.acceptRa));
  if (i.ipv6) {
    c.dhcp6 = dhcp6;
    c['accept-ra'] = i.ipv6.acceptRa;
  }
  // the MTU from the metadata wins over one a DHCP server offers (networkd would otherwise say
  // so); networkd needs the same use-mtu for both families
  if (i.mtu !== null && (i.dhcp4 || dhcp6)) {
    if (i.dhcp4) c['dhcp4-overrides'] = { 'use-mtu': false };
    if (dhcp6) c['dhcp6-overrides'] = { 'use-mtu': false };
  }
  if (i.addresses.length) c.addresses = i.addresses.map((a) => `${a.address}/${a.prefixLength}`);
  if (i.routes.length) {
    c.routes = i.routes.map((r) => {
      const out: Record<string, unknown> = { to: r.destination, via: r.gateway };
      if (r.metric !== null) out.metric = r.metric;
      if (r.onLink) out['on-link'] = true;
      return out;
    });
  }
  let dns = interfaceDns(state, i, carriers);
  if (opts.netplanRenderer === 'NetworkManager') {
    // netplan's NetworkManager backend turns an IPv6 server on an IPv4-only link into
    // "[ipv6] method=manual" without addresses, which NetworkManager rejects
    const has6 = i.ipv6 !== null || i.addresses.some((a) => a.family === 6);
    const has4 = i.dhcp4 || i.addresses.some((a) => a.family === 4);
    dns = { ...dns, nameservers: dns.nameservers.filter((n) => (n.includes(':') ? has6 : has4)) };
  }
  if (dns.nameservers.length || dns.search.length) {
    const ns: Record<string, unknown> = {};
    if (dns.nameservers.length) ns.addresses = dns.nameservers;
    if (dns.search.length) ns.search = dns.search;
    c.nameservers = ns;
  }
}
