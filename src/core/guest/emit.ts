// The store's view of a VM -> OpenStack network_data.json (pure): a link per VIF (MAC, the
// network's MTU), a network per address (type, address, netmask, routes, DNS), global DNS.
import { notFound } from '../model/errors.js';
import type { Snapshot } from '../model/snapshot.js';
import type { Family, Network } from '../model/types.js';
import { BITS, formatAddress, hostMask, parseAddress, parseCidr } from '../ipam/addr.js';

export interface NetworkDataJson {
  links: Record<string, unknown>[];
  networks: Record<string, unknown>[];
  services: { type: 'dns'; address: string }[];
}

function netmask(family: Family, prefixLength: number): string {
  return formatAddress(family, hostMask(family, 0) ^ hostMask(family, prefixLength));
}

function dnsServices(dns: string[]): { type: 'dns'; address: string }[] {
  return dns.map((address) => ({ type: 'dns' as const, address }));
}

/**
 * The DNS servers a guest on this network should use. On a libvirt network without its own list
 * that is libvirt's dnsmasq on the gateway, which its DHCP hands out; a static config without it
 * would leave the guest with no DNS after its next boot.
 */
function guestDns(net: Network): string[] {
  if (net.dns.length || net.driver !== 'libvirt') return net.dns;
  return net.subnets.filter((s) => s.gateway !== null && !s.gateway.toLowerCase().startsWith('fe80:')).map((s) => s.gateway!);
}

export function networkDataForVm(snapshot: Snapshot, vmUuid: string): NetworkDataJson {
  const vm = snapshot.vms.find((v) => v.uuid === vmUuid);
  if (!vm) throw notFound('vm', vmUuid);
  const networksByUuid = new Map<string, Network>(snapshot.networks.map((n) => [n.uuid, n]));
  const vifs = snapshot.vifs.filter((v) => v.vmUuid === vmUuid).sort((a, b) => a.device - b.device);
  const out: NetworkDataJson = { links: [], networks: [], services: [] };
  const globalDns: string[] = [];
  for (const vif of vifs) {
    const net = networksByUuid.get(vif.networkUuid);
    const linkId = `interface${vif.device}`;
    out.links.push({ id: linkId, type: 'phy', ethernet_mac_address: vif.mac, mtu: net?.mtu ?? null, vif_id: vif.uuid });
    if (!net) continue;
    const dns = guestDns(net);
    for (const d of dns) if (!globalDns.includes(d)) globalDns.push(d);
    // A routed single address (host route + proxy ARP/NDP on the host) only works when the guest
    // holds it, so it is a guest address (/32, /128); a routed prefix is the guest's to use as it
    // likes (a downstream network), not an address of this NIC.
    const rank = { primary: 0, additional: 1, routed: 2 } as Record<string, number>;
    const assignments = snapshot.assignments
      .filter((a) => a.vifUuid === vif.uuid && (a.kind === 'primary' || a.kind === 'additional' || (a.kind === 'routed' && a.prefixLength === BITS[a.family])))
      .sort((a, b) => a.family - b.family || rank[a.kind]! - rank[b.kind]! || a.address.localeCompare(b.address));
    const routedFamilies = new Set<Family>();
    const defaultFamilies = new Set<Family>();
    for (const a of assignments) {
      const addr = parseAddress(a.address);
      const subnet = net.subnets.find((s) => s.family === a.family && (() => {
        const c = parseCidr(s.cidr);
        return (addr.value & ~hostMask(c.family, c.prefixLength)) === c.network;
      })());
      const prefixLength = subnet && a.kind !== 'routed' ? parseCidr(subnet.cidr).prefixLength : a.prefixLength;
      const routes: Record<string, unknown>[] = [];
      // The default route goes with the first address of the family whose subnet has a gateway
      // (an earlier one may sit in a subnet without), static routes with the first address; more
      // would duplicate them.
      if (subnet?.gateway && !defaultFamilies.has(a.family)) {
        defaultFamilies.add(a.family);
        const zero = a.family === 4 ? '0.0.0.0' : '::';
        routes.push({ network: zero, netmask: zero, gateway: subnet.gateway });
      }
      if (!routedFamilies.has(a.family)) {
        routedFamilies.add(a.family);
        for (const r of net.routes) {
          const c = parseCidr(r.cidr);
          if (c.family !== a.family) continue;
          routes.push({ network: formatAddress(c.family, c.network), netmask: netmask(c.family, c.prefixLength), gateway: r.via });
        }
      }
      out.networks.push({
        id: `network${out.networks.length}`,
        link: linkId,
        // on router-advertisement networks the guest takes this (EUI-64) address by itself, as Nova says
        type: a.family === 4 ? 'ipv4' : net.extra.ipv6Slaac === true ? 'ipv6_slaac' : 'ipv6',
        ip_address: a.address,
        netmask: netmask(a.family, Math.min(prefixLength, BITS[a.family])),
        routes,
        network_id: net.uuid,
        services: dnsServices(dns),
      });
    }
    // Without an address of a family, a VIF on a network that serves that family by itself (libvirt's
    // DHCP range, router advertisements) gets DHCP/SLAAC: a push must not strip the guest's lease.
    const has = (family: Family) => assignments.some((a) => a.family === family && a.kind !== 'routed');
    const served = (family: Family) => net.subnets.some((s) => s.family === family);
    const dynamic = (type: string) => out.networks.push({ id: `network${out.networks.length}`, link: linkId, type, network_id: net.uuid, services: dnsServices(dns) });
    if (!has(4) && served(4) && typeof net.extra.dhcpRange === 'string' && net.extra.dhcpRange !== '') dynamic('ipv4_dhcp');
    if (!has(6) && served(6) && net.extra.ipv6Slaac === true) dynamic('ipv6_slaac');
  }
  out.services = dnsServices(globalDns);
  return out;
}
