// RHEL sysconfig: ifcfg-<if> (shell variable files), route-<if>/route6-<if> in ip(8) argument form,
// which unlike GATEWAY= can hold several default routes with metrics. BONDING_OPTS keeps every
// option, xmit_hash_policy included (upstream cloud-init drops it).
import type { GuestInterface, GuestNetState, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER, interfaceDns } from './common.js';

const DIR = 'etc/sysconfig/network-scripts';

function q(v: string): string {
  return `"${v.replace(/(["\\$`])/g, '\\$1')}"`;
}

export function renderSysconfig(state: GuestNetState): RenderedFiles {
  const out: RenderedFiles = {};
  const carriers = globalDnsCarriers(state);
  for (const i of state.interfaces) {
    const v: [string, string][] = [];
    v.push(['DEVICE', i.name], ['NAME', i.name], ['ONBOOT', 'yes']);
    if (i.type === 'physical') {
      v.push(['TYPE', 'Ethernet']);
      if (i.mac) v.push(['HWADDR', i.mac]);
    } else if (i.type === 'bond') {
      v.push(['TYPE', 'Bond'], ['BONDING_MASTER', 'yes']);
      v.push(['BONDING_OPTS', [`mode=${i.bond!.mode}`, ...i.bond!.options.map((o) => `${o.name}=${o.value}`)].join(' ')]);
      if (i.mac) v.push(['MACADDR', i.mac]);
    } else {
      v.push(['TYPE', 'Vlan'], ['VLAN', 'yes'], ['PHYSDEV', i.vlan!.parent], ['VLAN_ID', String(i.vlan!.id)]);
    }
    if (i.mtu !== null) v.push(['MTU', String(i.mtu)]);
    if (i.bondMaster) {
      v.push(['MASTER', i.bondMaster], ['SLAVE', 'yes'], ['BOOTPROTO', 'none']);
    } else {
      v.push(['BOOTPROTO', i.dhcp4 ? 'dhcp' : 'none']);
      i.addresses.filter((a) => a.family === 4).forEach((a, n) => v.push([`IPADDR${n || ''}`, a.address], [`PREFIX${n || ''}`, String(a.prefixLength)]));
      if (i.ipv6) {
        const v6 = i.addresses.filter((a) => a.family === 6).map((a) => `${a.address}/${a.prefixLength}`);
        v.push(['IPV6INIT', 'yes'], ['IPV6_AUTOCONF', i.ipv6.acceptRa ? 'yes' : 'no']);
        if (v6.length) v.push(['IPV6ADDR', v6[0]!]);
        if (v6.length > 1) v.push(['IPV6ADDR_SECONDARIES', v6.slice(1).join(' ')]);
        if (i.ipv6.dhcp !== 'none') v.push(['DHCPV6C', 'yes']);
        if (i.ipv6.dhcp === 'stateless') v.push(['DHCPV6C_OPTIONS', '-S']);
      }
      const dns = interfaceDns(state, i, carriers);
      dns.nameservers.forEach((n, k) => v.push([`DNS${k + 1}`, n]));
      if (dns.search.length) v.push(['DOMAIN', dns.search.join(' ')]);
      // never let a DHCP lease replace the default routes written in route-<if>
      if (i.routes.some((r) => r.family === 4 && r.destination === '0.0.0.0/0') && i.dhcp4) v.push(['DEFROUTE', 'no']);
    }
    out[`${DIR}/ifcfg-${i.name}`] = `# ${HEADER}\n` + v.map(([k, val]) => `${k}=${q(val)}`).join('\n') + '\n';
    for (const family of [4, 6] as const) {
      const routes = i.bondMaster ? [] : i.routes.filter((r) => r.family === family);
      if (!routes.length) continue;
      out[`${DIR}/${family === 4 ? 'route' : 'route6'}-${i.name}`] =
        `# ${HEADER}\n` + routes.map((r) => `${r.destination === '0.0.0.0/0' || r.destination === '::/0' ? 'default' : r.destination} via ${r.gateway} dev ${i.name}${r.metric !== null ? ` metric ${r.metric}` : ''}${r.onLink ? ' onlink' : ''}`).join('\n') + '\n';
    }
  }
  return out;
}

export type { GuestInterface };
