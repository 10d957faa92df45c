// Golden-file tests of the pure host compiler. IPVISOR_UPDATE_GOLDEN=1 rewrites the files; a missing one fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileHostPlan } from '../../src/core/compile/host-plan.js';
import type { HostFacts } from '../../src/core/compile/host-plan.js';
import { diffElements, emptyElements, renderElementChanges, renderTable } from '../../src/core/compile/nft-ruleset.js';
import { assign, emptySnapshot, network, pool, vif, vm } from './fixtures.js';
import { assertGoldenFile } from '../support/golden.js';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'golden');

function golden(name: string, actual: string): void {
  assertGoldenFile(join(GOLDEN, name), actual);
}

function scenario() {
  const s = emptySnapshot();
  const nat = network({ name: 'vms', bridge: 'br-vms', mode: 'nat', uplink: 'eth0', subnets: [
    { cidr: '10.10.0.0/24', family: 4, gateway: '10.10.0.1' },
    { cidr: '2001:db8:10::/64', family: 6, gateway: '2001:db8:10::1' },
  ], hostAddresses: ['10.10.0.2/24'] });
  const iso = network({ name: 'iso', bridge: 'br-iso', mode: 'isolated', defaultLocking: 'locked', subnets: [{ cidr: '10.20.0.0/24', family: 4, gateway: '10.20.0.1' }] });
  const lv = network({ name: 'lvnat', driver: 'libvirt', bridge: 'virbr1', mode: 'nat', subnets: [{ cidr: '192.168.100.0/24', family: 4, gateway: '192.168.100.1' }] });
  const xapi = network({ name: 'xen', driver: 'xapi', bridge: 'xenbr1', mode: 'bridged', hostAddresses: ['10.30.0.254/24'] });
  const gone = network({ name: 'gone', bridge: 'br-absent', mode: 'routed', subnets: [{ cidr: '10.40.0.0/24', family: 4, gateway: '10.40.0.1' }] });
  s.networks.push(nat, iso, lv, xapi, gone);
  const p4 = pool(nat, { family: 4 });
  const p6 = pool(nat, { family: 6 });
  const pr = pool(nat, { family: 4, purpose: 'routed' });
  const pr6 = pool(nat, { family: 6, purpose: 'routed' });
  const pi = pool(iso, { family: 4 });
  const plv = pool(lv, { family: 4 });
  const plvr = pool(lv, { family: 4, purpose: 'routed' });
  s.pools.push(p4, p6, pr, pr6, pi, plv, plvr);
  const a = vm('alpha');
  const b = vm('beta');
  s.vms.push(a, b);
  const locked = vif(a, nat, { mac: '52:54:00:00:00:01', ifname: 'vnet1' });
  const noaddr = vif(a, nat, { mac: '52:54:00:00:00:02', ifname: 'vnet2', device: 1 });
  const dis = vif(b, nat, { mac: '52:54:00:00:00:03', ifname: 'vnet3', locking: 'disabled' });
  const isoVif = vif(b, iso, { mac: '52:54:00:00:00:04', ifname: 'vnet4', device: 1 });
  const unbound = vif(b, nat, { mac: '52:54:00:00:00:05', device: 2 });
  const lvVif = vif(b, lv, { mac: '52:54:00:00:00:06', ifname: 'vnet6', device: 3 });
  s.vifs.push(locked, noaddr, dis, isoVif, unbound, lvVif);
  s.assignments.push(
    assign(locked, p4, '10.10.0.10'),
    assign(locked, p6, '2001:db8:10::10', { kind: 'additional' }),
    assign(locked, pr, '203.0.113.5', { kind: 'routed' }),
    assign(locked, pr, '203.0.113.16', { kind: 'routed', prefixLength: 29 }),
    assign(locked, pr6, '2001:db8:99::', { kind: 'routed', prefixLength: 56 }),
    assign(null, p4, '10.10.0.99', { kind: 'reserved' }),
    assign(lvVif, plv, '192.168.100.50'),
    assign(lvVif, plvr, '198.51.100.7', { kind: 'routed' }),
    assign(unbound, p4, '10.10.0.11'),
  );
  const facts: HostFacts = { links: {
    'br-vms': { up: true, addresses: [] }, 'br-iso': { up: true, addresses: [] }, virbr1: { up: true, addresses: ['192.168.100.1/24'] },
    xenbr1: { up: true, addresses: ['10.30.0.254/24'] }, eth0: { up: true, addresses: ['192.0.2.2/24'] },
  } };
  return { s, facts, nat, xapi };
}

test('host plan: addresses, routes, sysctls, nft elements, iptables accepts (golden)', () => {
  const { s, facts, xapi } = scenario();
  const plan = compileHostPlan(s, facts, { gateway: { via: '10.30.0.1', whenUp: xapi.uuid, metric: 1 }, narrow: [{ dev: 'xenbr1', address: '10.30.0.254' }] });
  golden('host-plan.json', JSON.stringify(plan, null, 2) + '\n');
  golden('bridge-table.nft', renderTable('bridge', plan.nft));
  golden('inet-table.nft', renderTable('inet', plan.nft));
  // behaviour, not only bytes: the points the issue names
  assert.ok(plan.nft.bridge.disabled_ifs.includes('"vnet3"'));
  assert.ok(plan.nft.bridge.locked_ifs.includes('"vnet1"') && plan.nft.bridge.locked_ifs.includes('"vnet4"'));
  assert.ok(!plan.nft.bridge.locked_ifs.includes('"vnet2"'), 'network_default + unlocked network + no address = unlocked');
  assert.ok(plan.nft.bridge.vif_net4.includes('"vnet1" . 203.0.113.16/29'));
  assert.ok(!plan.nft.bridge.vif_ip4.some((e) => e.includes('10.10.0.99')), 'reservations are not allowed sources');
  assert.deepEqual(plan.iptablesForward.map((r) => r.args.slice(0, 4)), [['-d', '198.51.100.7/32', '-o', 'virbr1'], ['-s', '198.51.100.7/32', '-i', 'virbr1']]);
  assert.ok(!plan.addresses.some((a) => a.dev === 'virbr1'), 'libvirt owns its own gateway address');
  assert.ok(plan.nft.inet.nat_bridges.includes('"br-vms"') && !plan.nft.inet.nat_bridges.includes('"virbr1"'), 'never NAT on top of libvirt');
  assert.deepEqual(plan.routes.find((r) => r.dst === 'default'), { dst: 'default', family: 4, dev: null, via: '10.30.0.1', metric: 1, why: 'ipvisor gateway' });
  assert.deepEqual(plan.narrowings, [{ dev: 'xenbr1', family: 4, from: '10.30.0.254/24', to: '10.30.0.254/32' }]);
  assert.ok(plan.warnings.some((w) => w.includes('br-absent')));
  // a routed prefix goes via the VIF's primary address; a single routed address stays on-link
  assert.equal(plan.routes.find((r) => r.dst === '203.0.113.16/29')?.via, '10.10.0.10');
  assert.equal(plan.routes.find((r) => r.dst === '203.0.113.5/32')?.via, null);
  // proxy answers without the kernel's 0.8 s proxy_delay; VM-to-VM on a NAT bridge accepted in inet
  assert.ok(plan.sysctls.some((x) => x.key === 'net.ipv4.neigh.eth0.proxy_delay' && x.value === '0'));
  assert.deepEqual(plan.nft.inet.nat_same_bridge, ['"br-vms" . "br-vms"']);
});

test('host plan: default route waits until the network is up with a same-family address', () => {
  const { s, facts, xapi } = scenario();
  facts.links.xenbr1 = { up: true, addresses: [] };
  const plan = compileHostPlan(s, facts, { gateway: { via: '10.30.0.1', whenUp: xapi.uuid, metric: 1 } });
  assert.equal(plan.routes.find((r) => r.dst === 'default'), undefined);
  facts.links.xenbr1 = { up: true, addresses: ['fd00::1/64'] };
  assert.equal(compileHostPlan(s, facts, { gateway: { via: '10.30.0.1', whenUp: xapi.uuid, metric: 1 } }).routes.find((r) => r.dst === 'default'), undefined);
});

test('host plan: a one-VIF change is only element adds/deletes', () => {
  const { s, facts } = scenario();
  const before = compileHostPlan(s, facts);
  const p4 = s.pools[0];
  s.assignments.push(assign(s.vifs[1], p4, '10.10.0.12'));
  const after = compileHostPlan(s, facts);
  const diff = diffElements(after.nft, before.nft, 'bridge');
  golden('one-vif-change.nft', renderElementChanges(diff));
  assert.equal(diffElements(after.nft, before.nft, 'inet').length, 0);
  assert.equal(renderTable('bridge', emptyElements()).split('\n').filter((l) => l.includes('chain')).length, renderTable('bridge', after.nft).split('\n').filter((l) => l.includes('chain')).length);
});

test('host plan: VIFs of VMs on another host are not enforced here', () => {
  const { s, facts } = scenario();
  s.vms[1] = { ...s.vms[1], host: 'elsewhere' };
  const plan = compileHostPlan(s, { ...facts, hostname: s.vms[0].host });
  assert.ok(plan.nft.bridge.locked_ifs.includes('"vnet1"'), 'this host\'s VM is enforced');
  assert.ok(!plan.nft.bridge.disabled_ifs.includes('"vnet3"') && !plan.nft.bridge.locked_ifs.includes('"vnet4"'), 'the other host\'s are not');
});

test('host plan: a reservation in a routed pool is routed to its network but locked to no VIF (import routed-ips)', () => {
  const { s, facts, nat } = scenario();
  const routedPool = s.pools.find((p) => p.networkUuid === nat.uuid && p.purpose === 'routed' && p.family === 4)!;
  const vifPool = s.pools.find((p) => p.networkUuid === nat.uuid && p.purpose === 'vif' && p.family === 4)!;
  s.assignments.push(assign(null, routedPool, '203.0.113.77', { kind: 'reserved' }));
  const plan = compileHostPlan(s, facts);
  assert.ok(plan.routes.some((r) => r.dst === '203.0.113.77/32' && r.dev === 'br-vms'), 'routed to the bridge');
  assert.ok(plan.nft.inet.routed4.some((e) => e.includes('203.0.113.77')), 'forward accept');
  assert.ok(!plan.vifs.some((v) => v.allowed.some((x: string) => x.includes('203.0.113.77'))), 'no VIF may send from it');
  // A reservation in a vif pool is only held: no route.
  assert.equal(vifPool.purpose, 'vif');
  assert.ok(!plan.routes.some((r) => r.dst === '10.10.0.99/32'));
});

test('host plan: an IPv6 link-local gateway is put on the bridge and its subnet routed there', () => {
  const { s, facts } = scenario();
  const ll = network({ name: 'll', bridge: 'br-ll', mode: 'routed', subnets: [{ cidr: '2001:db8:61::/64', family: 6, gateway: 'FE80::1' }] });
  const lv = network({ name: 'lvll', driver: 'libvirt', bridge: 'virbr9', mode: 'routed', subnets: [{ cidr: '2001:db8:62::/64', family: 6, gateway: 'fe80::1' }] });
  s.networks.push(ll, lv);
  facts.links['br-ll'] = { up: true, addresses: [] };
  facts.links.virbr9 = { up: true, addresses: [] };
  const plan = compileHostPlan(s, facts);
  assert.ok(plan.addresses.some((a) => a.dev === 'br-ll' && a.cidr === 'fe80::1/64'), 'the gateway on the bridge');
  assert.ok(plan.routes.some((r) => r.dst === '2001:db8:61::/64' && r.dev === 'br-ll' && r.via === null), 'the subnet routed to the bridge');
  assert.ok(!plan.addresses.some((a) => a.dev === 'virbr9') && !plan.routes.some((r) => r.dev === 'virbr9'), 'libvirt owns its bridge\'s L3');
});

test('host plan: an interface name bound to two VIFs is enforced for the most recent binding only', () => {
  const { s, facts, nat } = scenario();
  const c = vm('gamma');
  s.vms.push(c);
  // vnet1 (alpha's locked VIF, older) is bound again to gamma's new VIF: the stale binding loses
  const fresh = vif(c, nat, { mac: '52:54:00:00:00:77', ifname: 'vnet1', locking: 'disabled', updatedAt: '2030-01-01T00:00:00.000Z' });
  s.vifs.unshift(fresh);
  const plan = compileHostPlan(s, facts);
  assert.ok(plan.nft.bridge.disabled_ifs.includes('"vnet1"'), 'the newer binding is enforced');
  assert.ok(!plan.nft.bridge.locked_ifs.includes('"vnet1"'), 'the stale one is not');
  assert.ok(plan.warnings.some((w) => w.includes('vnet1') && w.includes('stale')));
  assert.deepEqual(plan.vifs.filter((v) => v.ifname === 'vnet1').map((v) => [v.mac, v.enforced]).sort(), [['52:54:00:00:00:01', false], ['52:54:00:00:00:77', true]]);
});

test('host plan: the binding time decides, not a later edit of the stale VIF', () => {
  const { s, facts, nat } = scenario();
  const c = vm('gamma');
  s.vms.push(c);
  const fresh = vif(c, nat, { mac: '52:54:00:00:00:77', ifname: 'vnet1', locking: 'disabled', boundAt: '2030-01-01T00:00:00.000Z', updatedAt: '2030-01-01T00:00:00.000Z' });
  s.vifs.unshift(fresh);
  // The stale VIF (bound long ago) is edited later, e.g. `vif set --locking`: it must not win.
  const stale = s.vifs.find((v) => v.ifname === 'vnet1' && v.uuid !== fresh.uuid)!;
  stale.boundAt = '2026-01-01T00:00:00.000Z';
  stale.updatedAt = '2031-01-01T00:00:00.000Z';
  const plan = compileHostPlan(s, facts);
  assert.ok(plan.nft.bridge.disabled_ifs.includes('"vnet1"'), 'the later bound VIF is enforced');
  assert.ok(!plan.nft.bridge.locked_ifs.includes('"vnet1"'));
});

test('host plan: a default route without --when-up waits until an up link reaches its next hop', () => {
  const { s, facts } = scenario();
  const far = compileHostPlan(s, facts, { gateway: { via: '172.16.0.1', whenUp: null, metric: 1 } });
  assert.equal(far.routes.find((r) => r.dst === 'default'), undefined, 'the kernel would refuse it and fail the batch');
  assert.ok(far.warnings.some((w) => w.includes('172.16.0.1')));
  const near = compileHostPlan(s, facts, { gateway: { via: '192.0.2.1', whenUp: null, metric: 1 } });
  assert.equal(near.routes.find((r) => r.dst === 'default')?.via, '192.0.2.1', 'eth0 holds 192.0.2.2/24');
});

test('host plan: per-interface sysctls of an uplink with a dot in its name use the \'/\' form sysctl(8) needs', () => {
  const { s, facts, nat } = scenario();
  nat.uplink = 'eth0.100';
  facts.links['eth0.100'] = { up: true, addresses: [] };
  const plan = compileHostPlan(s, facts);
  assert.ok(plan.sysctls.some((x) => x.key === 'net/ipv4/neigh/eth0.100/proxy_delay' && x.value === '0'), JSON.stringify(plan.sysctls));
  assert.ok(!plan.sysctls.some((x) => x.key.includes('.eth0.100.')));
});
