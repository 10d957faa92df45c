// network_data.json quirks real producers emit, each accepted into the IR; invalid input rejected
// with the element named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpvisorError } from '../../src/core/model/errors.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { render } from '../../src/core/guest/render.js';

const phy = (id: string, mac: string, extra: Record<string, unknown> = {}) => ({ id, type: 'phy', ethernet_mac_address: mac, ...extra });
const doc = (links: unknown[], networks: unknown[], services?: unknown[]) => ({ links, networks, ...(services ? { services } : {}) });

function rejects(d: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => parseNetworkData(d),
    (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && e.field === field && message.test(e.message),
  );
}

test('every IPv6 netmask form: expanded mask, "64", "", /NN inside the address, missing, prefix key', () => {
  const nets = [
    { netmask: 'ffff:ffff:ffff:ff00::', ip_address: '2001:db8::1' },
    { netmask: '64', ip_address: '2001:db8:1::1' },
    { netmask: '', ip_address: '2001:DB8:2::1' },
    { ip_address: '2001:db8:3::1/48', netmask: 'ffff:ffff:ffff:ffff::' }, // the prefix in the address wins
    { ip_address: '2001:db8:4::1' },
    { ip_address: '2001:db8:5::1', prefix: 72 },
  ].map((n, i) => ({ id: `n${i}`, link: 'l', type: 'ipv6', ...n }));
  const s = parseNetworkData(doc([phy('l', '02:00:00:00:00:01')], nets));
  assert.deepEqual(s.interfaces[0]!.addresses.map((a) => `${a.address}/${a.prefixLength}`), ['2001:db8::1/56', '2001:db8:1::1/64', '2001:db8:2::1/64', '2001:db8:3::1/48', '2001:db8:4::1/64', '2001:db8:5::1/72']);
});

test('IPv4 netmask forms: dotted, integer string, missing -> /24', () => {
  const s = parseNetworkData(doc([phy('l', '02:00:00:00:00:01')], [
    { id: 'a', link: 'l', type: 'ipv4', ip_address: '10.0.0.2', netmask: '255.255.255.192' },
    { id: 'b', link: 'l', type: 'ipv4', ip_address: '10.1.0.2', netmask: '16' },
    { id: 'c', link: 'l', type: 'ipv4', ip_address: '10.2.0.2' },
  ]));
  assert.deepEqual(s.interfaces[0]!.addresses.map((a) => a.prefixLength), [26, 16, 24]);
});

test('numeric bond modes become names; every bond_* option is kept; upper-case and dashed MACs', () => {
  const s = parseNetworkData(doc(
    [
      phy('a', 'AA-BB-CC-00-00-01'),
      phy('b', 'aa:BB:cc:00:00:02'),
      { id: 'bond', type: 'bond', bond_links: ['a', 'b'], bond_mode: '1', bond_miimon: '100', bond_primary: 'eth0', bond_lacp_rate: '1', bond_updelay: 200, ethernet_mac_address: 'AA:BB:CC:00:00:01' },
      { id: 'bond2', type: 'bond', bond_links: [], bond_mode: 4 },
    ].slice(0, 3),
    [],
  ));
  const bond = s.interfaces[2]!;
  assert.equal(bond.name, 'bond0');
  assert.equal(bond.bond!.mode, 'active-backup');
  assert.deepEqual(bond.bond!.options, [{ name: 'miimon', value: '100' }, { name: 'primary', value: 'eth0' }, { name: 'lacp_rate', value: 'fast' }, { name: 'updelay', value: '200' }]);
  assert.deepEqual(s.interfaces.map((i) => i.mac), ['aa:bb:cc:00:00:01', 'aa:bb:cc:00:00:02', 'aa:bb:cc:00:00:01']);
  assert.deepEqual(s.interfaces.slice(0, 2).map((i) => i.bondMaster), ['bond0', 'bond0']);
  const netplan = Object.values(render(s, 'netplan'))[0]!;
  assert.match(netplan, /mode: active-backup\n {8}mii-monitor-interval: 100\n {8}primary: eth0\n {8}lacp-rate: fast\n {8}up-delay: 200/);
  assert.match(Object.values(render(s, 'sysconfig')).join('\n'), /BONDING_OPTS="mode=active-backup miimon=100 primary=eth0 lacp_rate=fast updelay=200"/);
  assert.match(Object.values(render(s, 'networkd')).join('\n'), /Mode=active-backup\nMIIMonitorSec=100ms\nLACPTransmitRate=fast\nUpDelaySec=200ms/);
  assert.match(Object.values(render(s, 'nm')).join('\n'), /\[bond\]\nmode=active-backup\nmiimon=100\nprimary=eth0\nlacp_rate=fast\nupdelay=200/);
  assert.match(Object.values(render(s, 'eni'))[0]!, /bond-mode active-backup\n {4}bond-miimon 100\n {4}bond-primary eth0\n {4}bond-lacp-rate fast\n {4}bond-updelay 200/);
});

test('VLAN on a phy and on a bond; names from link name, parent.vid, --nic', () => {
  const s = parseNetworkData(
    doc(
      [
        phy('p0', '02:00:00:00:00:01'),
        phy('p1', '02:00:00:00:00:02'),
        phy('p2', '02:00:00:00:00:03', { name: 'wan' }),
        { id: 'b', type: 'bond', name: 'bond-lan', bond_links: ['p0', 'p1'], bond_mode: '802.3ad', bond_xmit_hash_policy: 'layer2+3' },
        { id: 'v1', type: 'vlan', vlan_link: 'b', vlan_id: 10, vlan_mac_address: '02:00:00:00:00:01' },
        { id: 'v2', type: 'vlan', vlan_link: 'p2', vlan_id: 20 },
      ],
      [{ id: 'n', link: 'v2', type: 'ipv4_dhcp' }],
    ),
    { nicNames: { '02:00:00:00:00:02': 'ens4' } },
  );
  assert.deepEqual(s.interfaces.map((i) => i.name), ['eth0', 'ens4', 'wan', 'bond-lan', 'bond-lan.10', 'wan.20']);
  assert.deepEqual(s.interfaces[5]!.vlan, { id: 20, parent: 'wan' });
  const nd = render(s, 'networkd');
  assert.match(nd['etc/systemd/network/50-ipvisor-wan.network']!, /VLAN=wan\.20/);
  assert.match(nd['etc/systemd/network/50-ipvisor-bond-lan.10.netdev']!, /Kind=vlan\n\n\[VLAN\]\nId=10/);
});

test('ethN follows link order: the third NIC is eth2 even when the first two are named by --nic', () => {
  const links = [phy('a', '02:00:00:00:00:01'), phy('b', '02:00:00:00:00:02'), phy('c', '02:00:00:00:00:03'), phy('d', '02:00:00:00:00:04')];
  const names = (nics: Record<string, string>) => parseNetworkData(doc(links, []), { nicNames: nics }).interfaces.map((i) => i.name);
  assert.deepEqual(names({ '02:00:00:00:00:01': 'ens3', '02:00:00:00:00:02': 'ens4' }), ['ens3', 'ens4', 'eth2', 'eth3']);
  // a name taken by --nic is skipped, never reused
  assert.deepEqual(names({ '02:00:00:00:00:01': 'eth2' }), ['eth2', 'eth1', 'eth3', 'eth4']);
  assert.deepEqual(names({}), ['eth0', 'eth1', 'eth2', 'eth3']);
});

test('link types beyond phy (ovs, tap, bridge, vif, null, "physical", unknown) are NICs', () => {
  const types = ['ovs', 'tap', 'bridge', 'vif', null, 'physical', 'hw_veb', 'bgpovs'];
  const s = parseNetworkData(doc(types.map((t, i) => ({ id: `l${i}`, type: t, ethernet_mac_address: `02:00:00:00:00:1${i}` })), []));
  assert.deepEqual(s.interfaces.map((i) => [i.type, i.name]), types.map((_, i) => ['physical', `eth${i}`]));
});

test('missing services; per-network, per-route, dns_nameservers/dns_search and global DNS with search', () => {
  const s = parseNetworkData(doc(
    [phy('l', '02:00:00:00:00:01')],
    [{
      id: 'n', link: 'l', type: 'ipv4', ip_address: '192.0.2.2', netmask: '255.255.255.0',
      services: [{ type: 'dns', address: '192.0.2.53' }],
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.0.2.1', services: [{ type: 'dns', address: '192.0.2.54' }] }],
      dns_nameservers: ['192.0.2.55'], dns_search: ['lan.example'],
    }],
  ));
  assert.deepEqual(s.interfaces[0]!.dns, { nameservers: ['192.0.2.54', '192.0.2.53', '192.0.2.55'], search: ['lan.example'] });
  assert.deepEqual(s.dns, { nameservers: [], search: [] });
  const g = parseNetworkData({ links: [], networks: [], services: [{ type: 'dns', address: '2001:DB8::53', search: 'a.example b.example' }, { type: 'ntp', address: 'x' }] });
  assert.deepEqual(g.dns, { nameservers: ['2001:db8::53'], search: ['a.example', 'b.example'] });
});

test('ipv6_dhcpv6-stateless/-stateful/slaac carrying addresses: the guest gets them itself; RA default routes dropped', () => {
  const s = parseNetworkData(doc(
    [phy('a', '02:00:00:00:00:01'), phy('b', '02:00:00:00:00:02'), phy('c', '02:00:00:00:00:03')],
    [
      { id: 'x', link: 'a', type: 'ipv6_dhcpv6-stateless', ip_address: '2001:db8::5', netmask: 'ffff:ffff:ffff:ffff::', routes: [{ network: '::', netmask: '::', gateway: '2001:db8::1' }] },
      { id: 'y', link: 'b', type: 'ipv6_dhcpv6-stateful', ip_address: '2001:db8:1::5', netmask: 'ffff:ffff:ffff:ffff::' },
      { id: 'z', link: 'c', type: 'ipv6_slaac', ip_address: '2001:db8:2::5', netmask: '64', routes: [{ network: '2001:db8:99::', netmask: 'ffff:ffff:ffff::', gateway: '2001:db8:2::1' }] },
    ],
  ));
  assert.deepEqual(s.interfaces.map((i) => [i.ipv6, i.addresses.length, i.routes.map((r) => r.destination)]), [
    [{ acceptRa: true, dhcp: 'stateless' }, 0, []],
    [{ acceptRa: true, dhcp: 'stateful' }, 0, []],
    [{ acceptRa: true, dhcp: 'none' }, 0, ['2001:db8:99::/48']],
  ]);
  // the carried address is not configured, so until the router's prefix arrives the kernel would
  // reject the route (and networkd never retries it): the gateway is marked on-link
  assert.equal(s.interfaces[2]!.routes[0]!.onLink, true);
});

test('several default routes get distinct metrics; a gateway outside every subnet is on-link', () => {
  const s = parseNetworkData(doc(
    [phy('l', '02:00:00:00:00:01')],
    [{ id: 'n', link: 'l', type: 'ipv4', ip_address: '172.19.1.34', netmask: '255.255.252.0', routes: [
      { network: '0.0.0.0', netmask: '0.0.0.0', gateway: '172.19.3.254' },
      { network: '0.0.0.0', netmask: '0.0.0.0', gateway: '172.20.3.254' },
      { network: '0.0.0.0', netmask: '0.0.0.0', gateway: '172.19.3.254' }, // exact duplicate: dropped
    ] }],
  ));
  assert.deepEqual(s.interfaces[0]!.routes.map((r) => [r.gateway, r.metric, r.onLink]), [['172.19.3.254', 100, false], ['172.20.3.254', 200, true]]);
});

test('network-level gateway (non-standard) becomes the default route of a static network only', () => {
  const s = parseNetworkData(doc(
    [phy('a', '02:00:00:00:00:01'), phy('b', '02:00:00:00:00:02')],
    [
      { id: 'x', link: 'a', type: 'ipv6', ip_address: '2001::/56', gateway: 'fe80::1' },
      { id: 'y', link: 'b', type: 'ipv4_dhcp', gateway: '10.0.0.1' },
    ],
  ));
  assert.deepEqual(s.interfaces[0]!.routes.map((r) => `${r.destination} via ${r.gateway} onlink=${r.onLink}`), ['::/0 via fe80::1 onlink=false']);
  assert.deepEqual(s.interfaces[1]!.routes, []);
});

test('a network on a bond member (Ironic sample 24) goes on the bond, with a warning naming the element', () => {
  const s = parseNetworkData(
    doc(
      [phy('l', '02:00:00:00:00:01'), phy('m', '02:00:00:00:00:02'), { id: 'b', type: 'bond', bond_links: ['l', 'm'], bond_mode: '4' }],
      [{ id: 'n', link: 'm', type: 'ipv4', ip_address: '10.0.0.2', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.0.1' }] }],
    ),
  );
  const [l, m, b] = s.interfaces;
  assert.deepEqual([l!.addresses, m!.addresses, m!.routes], [[], [], []]);
  assert.deepEqual(b!.addresses, [{ family: 4, address: '10.0.0.2', prefixLength: 24 }]);
  assert.deepEqual(b!.routes.map((r) => `${r.destination} ${r.gateway} ${r.onLink}`), ['0.0.0.0/0 10.0.0.1 false']);
  assert.deepEqual(s.warnings, ["networks[0].link: 'm' is a member of bond 'b'; its ipv4 network is configured on the bond"]);
  assert.deepEqual(parseNetworkData(doc([phy('l', '02:00:00:00:00:01')], [])).warnings, []);
});

test('a bond without an MTU takes the common MTU of its members (the kernel would pull them down to its own)', () => {
  const bond = (mtus: (number | undefined)[], bondMtu?: number) =>
    parseNetworkData(doc([...mtus.map((m, i) => phy(`p${i}`, `02:00:00:00:00:0${i}`, m ? { mtu: m } : {})), { id: 'b', type: 'bond', bond_links: mtus.map((_, i) => `p${i}`), bond_mode: '4', ...(bondMtu ? { mtu: bondMtu } : {}) }], [])).interfaces.at(-1)!.mtu;
  assert.equal(bond([9000, 9000]), 9000);
  assert.equal(bond([9000, 9000], 1500), 1500); // its own MTU wins
  assert.equal(bond([9000, 1500]), null); // no common MTU: left to the OS
  assert.equal(bond([9000, undefined]), null);
});

test('invalid documents: the error names the element', () => {
  const l = [phy('l', '02:00:00:00:00:01')];
  rejects(doc(l, [{ id: 'n', link: 'l', type: 'ipv4', ip_address: '10.0.0.2', netmask: '255.0.255.0' }]), 'networks[0].netmask', /not a contiguous mask/);
  rejects(doc(l, [{}, {}, { id: 'n', link: 'nope', type: 'ipv4', ip_address: '10.0.0.2' }].map((n, i) => (i < 2 ? { id: 'd', link: 'l', type: 'ipv4_dhcp' } : n))), 'networks[2].link', /no link 'nope' in links/);
  rejects(doc(l, [{ id: 'n', link: 'l', type: 'ipv6', ip_address: '2001:db8::1', routes: [{ network: '2001:db8:1::', netmask: 'ff:ff:ff:ff::', gateway: '2001:db8::ff' }] }]), 'networks[0].routes[0].netmask', /'ff:ff:ff:ff::' is not a contiguous mask/);
  rejects(doc(l, [{ id: 'n', link: 'l', type: 'ipv4', ip_address: '10.0.0.300' }]), 'networks[0].ip_address', /not an IPv4 or IPv6 address/);
  rejects(doc(l, [{ id: 'n', link: 'l', type: 'ipv4', ip_address: '2001:db8::1' }]), 'networks[0].ip_address', /not an IPv4 address/);
  rejects(doc(l, [{ id: 'n', link: 'l', type: 'ipv5' }]), 'networks[0].type', /not a network type/);
  rejects(doc([phy('l', 'zz:00:00:00:00:01')], []), 'links[0].ethernet_mac_address', /not a MAC address/);
  rejects(doc([phy('l', '02:00:00:00:00:01'), phy('l', '02:00:00:00:00:02')], []), 'links[1].id', /duplicate link id 'l'/);
  rejects(doc([...l, { id: 'b', type: 'bond', bond_links: ['l'], bond_mode: '9' }], []), 'links[1].bond_mode', /not a bonding mode/);
  rejects(doc([...l, { id: 'b', type: 'bond', bond_links: ['l'], bond_mode: '4', bond_xmit_hash_policy: 'layer9' }], []), 'links[1].bond_xmit_hash_policy', /not a transmit hash policy/);
  rejects(doc([...l, { id: 'b', type: 'bond', bond_links: ['l'], bond_mode: '4', bond_frobnicate: 1 }], []), 'links[1].bond_frobnicate', /unknown bonding option/);
  rejects(doc([...l, { id: 'b', type: 'bond', bond_links: ['x'], bond_mode: '4' }], []), 'links[1].bond_links[0]', /no link 'x'/);
  rejects(doc([...l, { id: 'v', type: 'vlan', vlan_link: 'l', vlan_id: 5000 }], []), 'links[1].vlan_id', /between 1 and 4094/);
  rejects(doc([...l, { id: 'v', type: 'vlan', vlan_link: 'l' }], []), 'links[1].vlan_id', /^links\[1\]\.vlan_id: required: an integer between 1 and 4094$/);
  rejects(doc([...l, { id: 'v', type: 'vlan', vlan_link: 'q', vlan_id: 5 }], []), 'links[1].vlan_link', /no link 'q'/);
  rejects(doc([{ ...l[0], mtu: 10 }], []), 'links[0].mtu', /between 68 and 65535/);
  rejects(doc([phy('l', '02:00:00:00:00:01', { name: 'bad name' })], []), 'links[0].name', /not a valid interface name/);
  rejects(doc([{ ...l[0], mtu: 1500 }, { id: 'v', type: 'vlan', vlan_link: 'l', vlan_id: 5, mtu: 9000 }], []), 'links[1].mtu', /larger than the MTU of its parent 'l' \(1500\)/);
  rejects([], 'network_data', /expected a JSON object/);
  rejects({ links: {} }, 'links', /expected a list/);
});
