// Pure: libvirt XML in (hook stdin, virsh dumpxml) -> plain facts, and plain specs -> network XML.
// Parsing uses fast-xml-parser (small, no native code, cheap enough for the hook path).
import { XMLParser } from 'fast-xml-parser';

/** Elements that may repeat; the parser returns arrays for them even when there is one. */
const ARRAY_TAGS = new Set(['interface', 'ip', 'host', 'range', 'route']);

let parser: XMLParser | undefined;
function parse(xml: string): Record<string, unknown> {
  parser ??= new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    parseAttributeValue: false,
    parseTagValue: false,
    trimValues: true,
    isArray: (name) => ARRAY_TAGS.has(name),
  });
  return parser.parse(xml) as Record<string, unknown>;
}

type Node = Record<string, unknown>;
const obj = (v: unknown): Node | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : undefined);
const arr = (v: unknown): Node[] => (Array.isArray(v) ? (v.filter((x) => obj(x)) as Node[]) : obj(v) ? [v as Node] : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);
const text = (v: unknown): string | undefined => str(v) ?? str(obj(v)?.['#text']);
const attr = (n: Node | undefined, name: string): string | undefined => (n ? str(n[`@${name}`]) : undefined);

export type { LibvirtForwardMode, LibvirtIp, LibvirtNetworkInfo, LibvirtPortInfo, LibvirtInterfaceInfo, LibvirtDomainInfo } from '../../core/model/libvirt.js';
import type { LibvirtIp, LibvirtNetworkInfo, LibvirtPortInfo, LibvirtDomainInfo, LibvirtInterfaceInfo } from '../../core/model/libvirt.js';

function netmaskToPrefix(mask: string): number {
  let bits = 0;
  for (const part of mask.split('.')) {
    let n = Number(part);
    while (n & 0x80) {
      bits++;
      n = (n << 1) & 0xff;
    }
  }
  return bits;
}

function parseNetworkNode(n: Node): LibvirtNetworkInfo {
  const forward = obj(n.forward) ?? (n.forward === '' ? {} : undefined);
  const bridge = obj(n.bridge);
  const mtu = attr(obj(n.mtu), 'size');
  const ips: LibvirtIp[] = arr(n.ip).map((ip) => {
    const family = attr(ip, 'family') === 'ipv6' || (attr(ip, 'address') ?? '').includes(':') ? 6 : 4;
    const prefixText = attr(ip, 'prefix');
    const mask = attr(ip, 'netmask');
    const prefix = prefixText !== undefined ? Number(prefixText) : mask ? netmaskToPrefix(mask) : family === 4 ? 24 : 64;
    const dhcp = obj(ip.dhcp);
    return {
      family,
      address: attr(ip, 'address') ?? '',
      prefix,
      dhcpRanges: arr(dhcp?.range).map((r) => ({ start: attr(r, 'start') ?? '', end: attr(r, 'end') ?? '' })),
      hosts: arr(dhcp?.host).map((h) => ({ mac: attr(h, 'mac')?.toLowerCase(), ip: attr(h, 'ip') ?? '', name: attr(h, 'name') })),
    };
  });
  const conn = attr(n, 'connections');
  return {
    name: text(n.name) ?? '',
    uuid: (text(n.uuid) ?? '').toLowerCase(),
    forwardMode: forward === undefined ? 'none' : attr(forward, 'mode') ?? 'nat',
    bridge: attr(bridge, 'name') ?? null,
    mtu: mtu ? Number(mtu) : null,
    ips,
    connections: conn !== undefined ? Number(conn) : null,
  };
}

function parsePortNode(p: Node): LibvirtPortInfo {
  const owner = obj(p.owner);
  return {
    uuid: (text(p.uuid) ?? '').toLowerCase(),
    ownerName: text(owner?.name) ?? null,
    ownerUuid: text(owner?.uuid)?.toLowerCase() ?? null,
    mac: attr(obj(p.mac), 'address')?.toLowerCase() ?? null,
    bridge: attr(obj(p.plug), 'bridge') ?? null,
  };
}

/** `virsh net-dumpxml` output, or the <network> inside hook data. */
export function parseNetworkXml(xml: string): LibvirtNetworkInfo {
  const doc = parse(xml);
  const n = obj(doc.network) ?? obj(obj(doc.hookData)?.network);
  if (!n) throw new Error('no <network> element');
  return parseNetworkNode(n);
}

/** Network hook stdin: <hookData><network/>[<networkport/>]</hookData>. */
export function parseNetworkHookXml(xml: string): { network: LibvirtNetworkInfo; port: LibvirtPortInfo | null } {
  const doc = parse(xml);
  const hd = obj(doc.hookData) ?? doc;
  const n = obj(hd.network);
  if (!n) throw new Error('no <network> element in hook data');
  const p = obj(hd.networkport);
  return { network: parseNetworkNode(n), port: p ? parsePortNode(p) : null };
}

/** `virsh net-port-dumpxml` output. */
export function parsePortXml(xml: string): LibvirtPortInfo {
  const p = obj(parse(xml).networkport);
  if (!p) throw new Error('no <networkport> element');
  return parsePortNode(p);
}

/** Domain XML (qemu hook stdin, `virsh dumpxml`). */
export function parseDomainXml(xml: string): LibvirtDomainInfo {
  const d = obj(parse(xml).domain);
  if (!d) throw new Error('no <domain> element');
  const devices = obj(d.devices);
  const interfaces: LibvirtInterfaceInfo[] = arr(devices?.interface).map((i) => {
    const source = obj(i.source);
    return {
      type: attr(i, 'type') ?? 'unknown',
      mac: attr(obj(i.mac), 'address')?.toLowerCase() ?? null,
      network: attr(source, 'network') ?? null,
      bridge: attr(source, 'bridge') ?? null,
      portid: attr(source, 'portid')?.toLowerCase() ?? null,
      target: attr(obj(i.target), 'dev') ?? null,
      alias: attr(obj(i.alias), 'name') ?? null,
    };
  });
  const id = attr(d, 'id');
  return { name: text(d.name) ?? '', uuid: (text(d.uuid) ?? '').toLowerCase(), id: id !== undefined ? Number(id) : null, interfaces };
}

// ---------------------------------------------------------------------------------------------
// Generation

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);
}

export interface ManagedNetworkSpec {
  name: string;
  uuid: string;
  /** libvirt forward mode; 'none' = isolated (no <forward>). */
  forwardMode: 'nat' | 'route' | 'open' | 'none';
  /** null: libvirt picks a free virbrN. */
  bridge: string | null;
  mtu: number | null;
  ipv4: { gateway: string; prefix: number; dhcpStart: string; dhcpEnd: string; hosts?: Array<{ mac: string; ip: string; name?: string }> } | null;
  ipv6: { gateway: string; prefix: number } | null;
  dns?: string[];
}

/** The <network> XML for `virsh net-define`. IPv6 without <dhcp> makes libvirt's dnsmasq send
 * router advertisements only (SLAAC), which is what the EUI-64 assignment relies on. */
export function buildNetworkXml(s: ManagedNetworkSpec): string {
  const e = escapeXml;
  const lines = ['<network>', `  <name>${e(s.name)}</name>`, `  <uuid>${e(s.uuid)}</uuid>`];
  if (s.forwardMode !== 'none') lines.push(`  <forward mode='${s.forwardMode}'/>`);
  lines.push(s.bridge ? `  <bridge name='${e(s.bridge)}' stp='off' delay='0'/>` : `  <bridge stp='off' delay='0'/>`);
  if (s.mtu) lines.push(`  <mtu size='${s.mtu}'/>`);
  if (s.dns?.length) {
    lines.push('  <dns>', ...s.dns.map((d) => `    <forwarder addr='${e(d)}'/>`), '  </dns>');
  }
  if (s.ipv4) {
    const v = s.ipv4;
    lines.push(`  <ip address='${e(v.gateway)}' prefix='${v.prefix}'>`, '    <dhcp>', `      <range start='${e(v.dhcpStart)}' end='${e(v.dhcpEnd)}'/>`);
    for (const h of v.hosts ?? []) lines.push(`      ${dhcpHostXml(h)}`);
    lines.push('    </dhcp>', '  </ip>');
  }
  if (s.ipv6) lines.push(`  <ip family='ipv6' address='${e(s.ipv6.gateway)}' prefix='${s.ipv6.prefix}'/>`);
  lines.push('</network>');
  return lines.join('\n') + '\n';
}

/** One DHCP host reservation, as `virsh net-update ... ip-dhcp-host` takes it. */
export function dhcpHostXml(h: { mac: string; ip: string; name?: string }): string {
  const name = h.name && /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(h.name) ? ` name='${escapeXml(h.name)}'` : '';
  return `<host mac='${escapeXml(h.mac)}'${name} ip='${escapeXml(h.ip)}'/>`;
}
