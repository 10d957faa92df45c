// What ipvisor reads from libvirt's XML (networks, ports, domains and their interfaces), as the
// agent's parser (src/agent/libvirt/xml.ts) produces it and the service layer records it.

export type LibvirtForwardMode = 'nat' | 'route' | 'open' | 'bridge' | 'none' | string;

export interface LibvirtIp {
  family: 4 | 6;
  address: string;
  prefix: number;
  dhcpRanges: Array<{ start: string; end: string }>;
  hosts: Array<{ mac?: string; ip: string; name?: string }>;
}

export interface LibvirtNetworkInfo {
  name: string;
  uuid: string;
  /** 'none' when the XML has no <forward> (isolated network). */
  forwardMode: LibvirtForwardMode;
  bridge: string | null;
  mtu: number | null;
  ips: LibvirtIp[];
  connections: number | null;
}

export interface LibvirtPortInfo {
  uuid: string;
  ownerName: string | null;
  ownerUuid: string | null;
  mac: string | null;
  bridge: string | null;
}

export interface LibvirtInterfaceInfo {
  /** 'network' | 'bridge' | ... */
  type: string;
  mac: string | null;
  network: string | null;
  bridge: string | null;
  portid: string | null;
  /** The tap (vnetN); only in live XML of a running domain. */
  target: string | null;
  alias: string | null;
}

export interface LibvirtDomainInfo {
  name: string;
  uuid: string;
  /** Live domain id; null when not running. */
  id: number | null;
  interfaces: LibvirtInterfaceInfo[];
}
