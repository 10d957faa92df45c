// networkDataForVm (pure): the store's view of a VM as network_data.json, and back through the parser.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { networkDataForVm } from '../../src/core/guest/emit.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { render } from '../../src/core/guest/render.js';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import type { Assignment, Network, Vif, Vm } from '../../src/core/model/types.js';

const t = '2026-01-01T00:00:00.000Z';
const net = (uuid: string, over: Partial<Network>): Network => ({
  uuid, name: uuid, driver: 'bridge', bridge: null, mode: 'bridged', subnets: [], mtu: null, dns: [], routes: [], defaultLocking: 'unlocked', uplink: null, hostAddresses: [], extra: {}, createdAt: t, updatedAt: t, ...over,
});
const vif = (uuid: string, device: number, mac: string, networkUuid: string): Vif => ({ uuid, vmUuid: 'vm1', device, mac, networkUuid, locking: 'network_default', ifname: null, extra: {}, createdAt: t, updatedAt: t });
const asg = (uuid: string, vifUuid: string | null, networkUuid: string, address: string, kind: Assignment['kind'], prefixLength?: number): Assignment => {
  const family = address.includes(':') ? 6 : 4;
  return { uuid, networkUuid, poolUuid: 'p', vifUuid, family, address, prefixLength: prefixLength ?? (family === 4 ? 32 : 128), kind, note: null, requestId: null, createdAt: t };
};

const snapshot: Snapshot = {
  networks: [
    net('lan', { subnets: [{ cidr: '192.0.2.0/24', family: 4, gateway: '192.0.2.1' }, { cidr: '2001:db8:1::/64', family: 6, gateway: 'fe80::1' }], mtu: 9000, dns: ['192.0.2.53', '2001:db8:1::53'], routes: [{ cidr: '10.0.0.0/8', via: '192.0.2.254' }] }),
    net('dmz', { subnets: [{ cidr: '198.51.100.0/25', family: 4, gateway: '198.51.100.1' }], dns: ['192.0.2.53'] }),
  ],
  pools: [],
  vms: [{ uuid: 'vm1', name: 'web1', host: 'hv1', owner: null, extra: {}, createdAt: t, updatedAt: t } satisfies Vm],
  vifs: [vif('v1', 1, '52:54:00:00:00:02', 'dmz'), vif('v0', 0, '52:54:00:00:00:01', 'lan')],
  assignments: [
    asg('a1', 'v0', 'lan', '192.0.2.11', 'additional'),
    asg('a0', 'v0', 'lan', '192.0.2.10', 'primary'),
    asg('a2', 'v0', 'lan', '2001:db8:1::10', 'primary'),
    asg('a3', 'v1', 'dmz', '198.51.100.5', 'primary'),
    asg('a4', 'v1', 'dmz', '203.0.113.0', 'routed', 29),
    asg('a5', null, 'lan', '192.0.2.99', 'reserved'),
  ],
};

test('a link per VIF in device order, a network per address, routes with the first address of a family', () => {
  const d = networkDataForVm(snapshot, 'vm1');
  assert.deepEqual(d.links, [
    { id: 'interface0', type: 'phy', ethernet_mac_address: '52:54:00:00:00:01', mtu: 9000, vif_id: 'v0' },
    { id: 'interface1', type: 'phy', ethernet_mac_address: '52:54:00:00:00:02', mtu: null, vif_id: 'v1' },
  ]);
  assert.deepEqual(
    d.networks.map((n) => [n.link, n.type, n.ip_address, n.netmask, (n.routes as { network: string; netmask: string; gateway: string }[]).map((r) => `${r.network}/${r.netmask}>${r.gateway}`)]),
    [
      ['interface0', 'ipv4', '192.0.2.10', '255.255.255.0', ['0.0.0.0/0.0.0.0>192.0.2.1', '10.0.0.0/255.0.0.0>192.0.2.254']],
      ['interface0', 'ipv4', '192.0.2.11', '255.255.255.0', []],
      ['interface0', 'ipv6', '2001:db8:1::10', 'ffff:ffff:ffff:ffff::', ['::/::>fe80::1']],
      ['interface1', 'ipv4', '198.51.100.5', '255.255.255.128', ['0.0.0.0/0.0.0.0>198.51.100.1']],
    ],
  );
  assert.deepEqual(d.services, [{ type: 'dns', address: '192.0.2.53' }, { type: 'dns', address: '2001:db8:1::53' }]);
});

test('the emitted document parses; two VIFs with gateways get default routes with distinct metrics', () => {
  const s = parseNetworkData(networkDataForVm(snapshot, 'vm1'));
  assert.deepEqual(s.interfaces.map((i) => [i.name, i.mtu, i.addresses.map((a) => `${a.address}/${a.prefixLength}`)]), [
    ['eth0', 9000, ['192.0.2.10/24', '192.0.2.11/24', '2001:db8:1::10/64']],
    ['eth1', null, ['198.51.100.5/25']],
  ]);
  const defaults = s.interfaces.flatMap((i) => i.routes.filter((r) => r.destination === '0.0.0.0/0').map((r) => `${i.name} ${r.gateway} ${r.metric}`));
  assert.deepEqual(defaults, ['eth0 192.0.2.1 100', 'eth1 198.51.100.1 200']);
});

test('an IPv6 address on a router-advertisement network is ipv6_slaac: the guest keeps RA on and takes it by itself', () => {
  const slaac: Snapshot = {
    ...snapshot,
    networks: snapshot.networks.map((n) => (n.uuid === 'lan' ? { ...n, extra: { ipv6Slaac: true } } : n)),
  };
  const d = networkDataForVm(slaac, 'vm1');
  assert.deepEqual(d.networks.map((n) => [n.type, n.ip_address]).slice(0, 3), [['ipv4', '192.0.2.10'], ['ipv4', '192.0.2.11'], ['ipv6_slaac', '2001:db8:1::10']]);
  const eth0 = parseNetworkData(d).interfaces[0]!;
  assert.deepEqual(eth0.ipv6, { acceptRa: true, dhcp: 'none' });
  assert.deepEqual(eth0.addresses.map((a) => a.address), ['192.0.2.10', '192.0.2.11']);
  assert.ok(!eth0.routes.some((r) => r.destination === '::/0'), 'the default route comes from the router');
});

test('a VIF without an address on a libvirt network with a DHCP range / RA gets ipv4_dhcp / ipv6_slaac, so a push keeps its lease', () => {
  const libvirt: Snapshot = {
    ...snapshot,
    networks: [...snapshot.networks, net('nat', { subnets: [{ cidr: '192.168.122.0/24', family: 4, gateway: '192.168.122.1' }, { cidr: '2001:db8:7a::/64', family: 6, gateway: '2001:db8:7a::1' }], dns: ['192.168.122.1'], extra: { dhcpRange: '192.168.122.128-192.168.122.254', ipv6Slaac: true } })],
    vifs: [...snapshot.vifs, vif('v2', 2, '52:54:00:00:00:03', 'nat')],
  };
  const d = networkDataForVm(libvirt, 'vm1');
  assert.deepEqual(d.networks.filter((n) => n.link === 'interface2').map((n) => [n.type, n.ip_address, n.services]), [
    ['ipv4_dhcp', undefined, [{ type: 'dns', address: '192.168.122.1' }]],
    ['ipv6_slaac', undefined, [{ type: 'dns', address: '192.168.122.1' }]],
  ]);
  // the dmz VIF (no DHCP range) with an IPv4 address gets nothing more
  assert.deepEqual(d.networks.filter((n) => n.link === 'interface1').map((n) => n.type), ['ipv4']);
  const eth2 = parseNetworkData(d).interfaces[2]!;
  assert.equal(eth2.dhcp4, true);
  assert.deepEqual(eth2.ipv6, { acceptRa: true, dhcp: 'none' });
  // the live script leaves the lease alone: nothing flushed or deleted on eth2
  const script = render(parseNetworkData(d), 'ip', { current: { eth2: [{ family: 4, address: '192.168.122.200', prefixLength: 24 }] } })['ipvisor-apply.sh']!;
  assert.doesNotMatch(script, /(flush|del) .*dev eth2/);
});

test('the default route comes from the first subnet with a gateway, even when an earlier address sits in one without', () => {
  const two: Snapshot = {
    ...snapshot,
    networks: [net('lan', { subnets: [{ cidr: '10.0.0.0/24', family: 4, gateway: null }, { cidr: '192.0.2.0/24', family: 4, gateway: '192.0.2.1' }], routes: [{ cidr: '172.16.0.0/12', via: '10.0.0.254' }] })],
    vifs: [vif('v0', 0, '52:54:00:00:00:01', 'lan')],
    assignments: [asg('a0', 'v0', 'lan', '10.0.0.5', 'primary'), asg('a1', 'v0', 'lan', '192.0.2.5', 'additional')],
  };
  const d = networkDataForVm(two, 'vm1');
  assert.deepEqual(
    d.networks.map((n) => [n.ip_address, (n.routes as { network: string; gateway: string }[]).map((r) => `${r.network} via ${r.gateway}`)]),
    [['10.0.0.5', ['172.16.0.0 via 10.0.0.254']], ['192.0.2.5', ['0.0.0.0 via 192.0.2.1']]],
  );
});

test('a routed single address is a guest address (/32, /128) after the others; a routed prefix is not', () => {
  const routed: Snapshot = {
    ...snapshot,
    assignments: [...snapshot.assignments, asg('a6', 'v1', 'dmz', '203.0.113.77', 'routed'), asg('a7', 'v1', 'dmz', '2001:db8:77::5', 'routed')],
  };
  const d = networkDataForVm(routed, 'vm1');
  assert.deepEqual(
    d.networks.filter((n) => n.link === 'interface1').map((n) => [n.type, n.ip_address, n.netmask, (n.routes as unknown[]).length]),
    [['ipv4', '198.51.100.5', '255.255.255.128', 1], ['ipv4', '203.0.113.77', '255.255.255.255', 0], ['ipv6', '2001:db8:77::5', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 0]],
  );
  // so a push keeps it in the guest instead of deleting it as stale
  const eth1 = parseNetworkData(d).interfaces[1]!;
  assert.deepEqual(eth1.addresses.map((a) => `${a.address}/${a.prefixLength}`), ['198.51.100.5/25', '203.0.113.77/32', '2001:db8:77::5/128']);
});

test('a VIF with only a routed address on a libvirt DHCP network still gets ipv4_dhcp', () => {
  const libvirt: Snapshot = {
    ...snapshot,
    networks: [net('nat', { subnets: [{ cidr: '192.168.122.0/24', family: 4, gateway: '192.168.122.1' }], extra: { dhcpRange: '192.168.122.128-192.168.122.254' } })],
    vifs: [vif('v0', 0, '52:54:00:00:00:01', 'nat')],
    assignments: [asg('r', 'v0', 'nat', '203.0.113.9', 'routed')],
  };
  assert.deepEqual(networkDataForVm(libvirt, 'vm1').networks.map((n) => [n.type, n.ip_address]), [['ipv4', '203.0.113.9'], ['ipv4_dhcp', undefined]]);
});

test('a libvirt network without its own DNS list: the guest is told libvirt\'s dnsmasq on the gateway, as its DHCP would', () => {
  const libvirt: Snapshot = {
    ...snapshot,
    networks: [net('nat', { driver: 'libvirt', subnets: [{ cidr: '192.168.122.0/24', family: 4, gateway: '192.168.122.1' }, { cidr: 'fd00:7a::/64', family: 6, gateway: 'fd00:7a::1' }] })],
    vifs: [vif('v0', 0, '52:54:00:00:00:01', 'nat')],
    assignments: [asg('a', 'v0', 'nat', '192.168.122.10', 'primary')],
  };
  const d = networkDataForVm(libvirt, 'vm1');
  const dns = [{ type: 'dns', address: '192.168.122.1' }, { type: 'dns', address: 'fd00:7a::1' }];
  assert.deepEqual([d.networks[0]!.services, d.services], [dns, dns]);
  // its own list wins; other drivers get only their own list
  const own = networkDataForVm({ ...libvirt, networks: [{ ...libvirt.networks[0]!, dns: ['9.9.9.9'] }] }, 'vm1');
  assert.deepEqual(own.services, [{ type: 'dns', address: '9.9.9.9' }]);
  assert.deepEqual(networkDataForVm({ ...libvirt, networks: [{ ...libvirt.networks[0]!, driver: 'bridge' }] }, 'vm1').services, []);
});

test('an unknown VM is NOT_FOUND', () => {
  assert.throws(() => networkDataForVm(snapshot, 'nope'), (e: unknown) => (e as { code?: string }).code === 'NOT_FOUND');
});
