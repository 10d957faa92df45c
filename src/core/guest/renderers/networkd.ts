// systemd-networkd: a .network per interface, a .netdev for every bond and VLAN (which cloud-init
// 22.4 never writes), a .link per renamed NIC. Bond mode names and every bonding option are kept.
import { bondOptionSpec, networkdBondValue } from '../bond.js';
import type { GuestNetState, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER, interfaceDns } from './common.js';

const DIR = 'etc/systemd/network';

function section(name: string, lines: string[]): string {
  return `[${name}]\n${lines.join('\n')}\n`;
}

export function renderNetworkd(state: GuestNetState): RenderedFiles {
  const out: RenderedFiles = {};
  const carriers = globalDnsCarriers(state);
  for (const i of state.interfaces) {
    const base = `${DIR}/50-ipvisor-${i.name}`;
    if (i.type === 'physical' && i.mac) {
      out[`${DIR}/10-ipvisor-${i.name}.link`] = [`# ${HEADER}\n`, section('Match', [`PermanentMACAddress=${i.mac}`]), '\n', section('Link', [`Name=${i.name}`])].join('');
    }
    if (i.type === 'bond' || i.type === 'vlan') {
      const netdev = [`Name=${i.name}`, `Kind=${i.type}`];
      if (i.mtu !== null) netdev.push(`MTUBytes=${i.mtu}`);
      if (i.type === 'bond' && i.mac) netdev.push(`MACAddress=${i.mac}`);
      const parts = [`# ${HEADER}\n`, section('NetDev', netdev)];
      if (i.type === 'bond') {
        const bond = [`Mode=${i.bond!.mode}`];
        for (const o of i.bond!.options) {
          const spec = bondOptionSpec(o.name)!;
          if (spec.networkd) bond.push(`${spec.networkd}=${networkdBondValue(spec, o.value)}`);
        }
        parts.push('\n', section('Bond', bond));
      } else {
        parts.push('\n', section('VLAN', [`Id=${i.vlan!.id}`]));
      }
      out[`${base}.netdev`] = parts.join('');
    }
    const match = i.type === 'physical' && i.mac ? [`PermanentMACAddress=${i.mac}`] : [`Name=${i.name}`];
    const parts = [`# ${HEADER}\n`, section('Match', match)];
    if (i.mtu !== null && i.type === 'physical') parts.push('\n', section('Link', [`MTUBytes=${i.mtu}`]));
    const net: string[] = [];
    if (i.bondMaster) {
      net.push(`Bond=${i.bondMaster}`);
      const master = state.interfaces.find((b) => b.name === i.bondMaster);
      if (master?.bond?.options.some((o) => o.name === 'primary' && o.value === i.name)) net.push('PrimarySlave=yes');
    } else {
      const dhcp6 = i.ipv6 !== null && i.ipv6.dhcp !== 'none';
      net.push(`DHCP=${i.dhcp4 && dhcp6 ? 'yes' : i.dhcp4 ? 'ipv4' : dhcp6 ? 'ipv6' : 'no'}`);
      if (i.ipv6) net.push(`IPv6AcceptRA=${i.ipv6.acceptRa ? 'yes' : 'no'}`);
      if (!i.dhcp4 && i.addresses.length === 0 && i.ipv6 === null) net.push('LinkLocalAddressing=no');
      for (const a of i.addresses) net.push(`Address=${a.address}/${a.prefixLength}`);
      const dns = interfaceDns(state, i, carriers);
      for (const n of dns.nameservers) net.push(`DNS=${n}`);
      if (dns.search.length) net.push(`Domains=${dns.search.join(' ')}`);
    }
    for (const v of state.interfaces) if (v.vlan?.parent === i.name) net.push(`VLAN=${v.name}`);
    parts.push('\n', section('Network', net));
    for (const r of i.bondMaster ? [] : i.routes) {
      const route = [`Destination=${r.destination}`, `Gateway=${r.gateway}`];
      if (r.metric !== null) route.push(`Metric=${r.metric}`);
      if (r.onLink) route.push('GatewayOnLink=yes');
      parts.push('\n', section('Route', route));
    }
    out[`${base}.network`] = parts.join('');
  }
  return out;
}
