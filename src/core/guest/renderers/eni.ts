// Debian ifupdown (interfaces.d fragment). Bonds use ifenslave's bond-* options with mode names;
// VLANs use vlan-raw-device; routes are ip(8) hooks so several default routes get their metrics.
import type { GuestInterface, GuestNetState, GuestRoute, RenderedFiles } from '../ir.js';
import { globalDnsCarriers, HEADER, interfaceDns } from './common.js';

export const ENI_PATH = 'etc/network/interfaces.d/50-ipvisor';

function routeArgs(r: GuestRoute, dev: string): string {
  return `${r.destination} via ${r.gateway} dev ${dev}${r.metric !== null ? ` metric ${r.metric}` : ''}${r.onLink ? ' onlink' : ''}`;
}

export function renderEni(state: GuestNetState): RenderedFiles {
  const carriers = globalDnsCarriers(state);
  const blocks: string[] = [`# ${HEADER}`];
  for (const i of state.interfaces) blocks.push(...stanzas(state, i, carriers));
  return { [ENI_PATH]: blocks.join('\n\n') + '\n' };
}

function stanzas(state: GuestNetState, i: GuestInterface, carriers: Set<GuestInterface>): string[] {
  const link: string[] = [];
  if (i.type === 'bond') {
    link.push(`bond-slaves ${i.bond!.members.join(' ')}`, `bond-mode ${i.bond!.mode}`);
    for (const o of i.bond!.options) link.push(`bond-${o.name.replace(/_/g, '-')} ${o.value.replace(/,/g, ' ')}`);
    if (i.mac) link.push(`hwaddress ether ${i.mac}`);
  }
  if (i.type === 'vlan') link.push(`vlan-raw-device ${i.vlan!.parent}`);
  if (i.bondMaster) link.push(`bond-master ${i.bondMaster}`);
  if (i.mtu !== null) link.push(`mtu ${i.mtu}`);

  const v4 = i.addresses.filter((a) => a.family === 4);
  const v6 = i.addresses.filter((a) => a.family === 6);
  const dns = interfaceDns(state, i, carriers);
  const dnsLines = [...(dns.nameservers.length ? [`dns-nameservers ${dns.nameservers.join(' ')}`] : []), ...(dns.search.length ? [`dns-search ${dns.search.join(' ')}`] : [])];
  const routes = (family: 4 | 6): string[] =>
    i.routes.filter((r) => r.family === family).flatMap((r) => [`post-up ip -${family} route replace ${routeArgs(r, i.name)}`, `pre-down ip -${family} route del ${routeArgs(r, i.name)} || true`]);

  type Stanza = { method: string; family: 'inet' | 'inet6'; lines: string[] };
  const list: Stanza[] = [];
  if (i.dhcp4) list.push({ method: 'dhcp', family: 'inet', lines: [] });
  v4.forEach((a) => list.push({ method: 'static', family: 'inet', lines: [`address ${a.address}/${a.prefixLength}`] }));
  if (v4.length || i.dhcp4) list[list.length - 1]!.lines.push(...routes(4));
  if (i.ipv6) {
    if (i.ipv6.dhcp === 'stateful') list.push({ method: 'dhcp', family: 'inet6', lines: ['accept_ra 2'] });
    else if (i.ipv6.acceptRa) list.push({ method: 'auto', family: 'inet6', lines: i.ipv6.dhcp === 'stateless' ? ['dhcp 1'] : [] });
    v6.forEach((a, n) => list.push({ method: 'static', family: 'inet6', lines: [`address ${a.address}/${a.prefixLength}`, ...(n === 0 && !i.ipv6!.acceptRa ? ['accept_ra 0'] : [])] }));
    list[list.length - 1]!.lines.push(...routes(6));
  }
  if (list.length === 0) list.push({ method: 'manual', family: 'inet', lines: [] });
  // link options and DNS go on the first stanza; "mtu" is only an option of static/manual
  const first = list[0]!;
  const linkOpts = first.method === 'static' || first.method === 'manual' ? link : link.filter((l) => !l.startsWith('mtu '));
  if (linkOpts.length !== link.length) first.lines.unshift(`pre-up ip link set dev ${i.name} mtu ${i.mtu}`);
  first.lines.unshift(...linkOpts);
  first.lines.push(...dnsLines);
  return list.map((s, n) => [...(n === 0 ? [`auto ${i.name}`] : []), `iface ${i.name} ${s.family} ${s.method}`, ...s.lines.map((l) => `    ${l}`)].join('\n'));
}
