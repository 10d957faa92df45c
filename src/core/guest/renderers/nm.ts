// NetworkManager keyfiles. Ethernet profiles match by MAC; bonds keep mode and every option in
// [bond] (cloud-init 22.4 loses mode and xmit_hash_policy); a gateway is only ever a route of a
// profile with addresses, never a bare gateway= on a DHCP profile (which nmcli rejects).
import type { GuestInterface, GuestNetState, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER, interfaceDns, stableUuid } from './common.js';

const DIR = 'etc/NetworkManager/system-connections';

export function nmConnectionId(i: GuestInterface): string {
  return `ipvisor-${i.name}`;
}

function section(name: string, kv: [string, string | number | boolean][]): string {
  return `[${name}]\n${kv.map(([k, v]) => `${k}=${v}`).join('\n')}\n`;
}

export function renderNm(state: GuestNetState): RenderedFiles {
  const out: RenderedFiles = {};
  const carriers = globalDnsCarriers(state);
  for (const i of state.interfaces) {
    const type = i.type === 'physical' ? 'ethernet' : i.type;
    const conn: [string, string | number | boolean][] = [
      ['id', nmConnectionId(i)],
      ['uuid', stableUuid(`nm:${i.name}`)],
      ['type', type],
    ];
    if (!(i.type === 'physical' && i.mac)) conn.push(['interface-name', i.name]);
    conn.push(['autoconnect', true]);
    if (i.bondMaster) conn.push(['master', i.bondMaster], ['slave-type', 'bond']);
    const parts = [`# ${HEADER}\n`, section('connection', conn)];
    const eth: [string, string | number | boolean][] = [];
    if (i.type === 'physical' && i.mac) eth.push(['mac-address', i.mac.toUpperCase()]);
    if (i.type === 'bond' && i.mac) eth.push(['cloned-mac-address', i.mac.toUpperCase()]);
    if (i.mtu !== null) eth.push(['mtu', i.mtu]);
    if (eth.length) parts.push('\n', section('ethernet', eth));
    if (i.type === 'bond') {
      parts.push('\n', section('bond', [['mode', i.bond!.mode], ...i.bond!.options.map((o): [string, string] => [o.name, o.value])]));
    }
    if (i.type === 'vlan') parts.push('\n', section('vlan', [['id', i.vlan!.id], ['parent', i.vlan!.parent]]));
    if (!i.bondMaster) {
      const dns = interfaceDns(state, i, carriers);
      // search domains go with IPv4, or with IPv6 on an interface without IPv4
      const searchFamily = !i.dhcp4 && !i.addresses.some((a) => a.family === 4) ? 6 : 4;
      for (const family of [4, 6] as const) {
        const addrs = i.addresses.filter((a) => a.family === family);
        const ip: [string, string | number | boolean][] = [];
        let method: string;
        if (family === 4) method = i.dhcp4 ? 'auto' : addrs.length ? 'manual' : 'disabled';
        else method = i.ipv6 === null ? 'ignore' : i.ipv6.acceptRa ? 'auto' : i.ipv6.dhcp !== 'none' ? 'dhcp' : addrs.length ? 'manual' : 'ignore';
        ip.push(['method', method]);
        addrs.forEach((a, n) => ip.push([`address${n + 1}`, `${a.address}/${a.prefixLength}`]));
        i.routes
          .filter((r) => r.family === family)
          .forEach((r, n) => {
            ip.push([`route${n + 1}`, `${r.destination},${r.gateway}${r.metric !== null ? `,${r.metric}` : ''}`]);
            if (r.onLink) ip.push([`route${n + 1}_options`, 'onlink=true']);
          });
        const ns = dns.nameservers.filter((n) => (family === 4 ? !n.includes(':') : n.includes(':')));
        if (ns.length && method !== 'disabled' && method !== 'ignore') ip.push(['dns', ns.join(';') + ';']);
        if (dns.search.length && family === searchFamily && method !== 'disabled' && method !== 'ignore') ip.push(['dns-search', dns.search.join(';') + ';']);
        parts.push('\n', section(family === 4 ? 'ipv4' : 'ipv6', ip));
      }
    }
    out[`${DIR}/${nmConnectionId(i)}.nmconnection`] = parts.join('');
  }
  return out;
}
