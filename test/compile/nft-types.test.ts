// The nftables renderer writes only values of each set's type (defense in depth behind the entry
// validators): a hostile value fed straight to the compiler is an error, never ruleset text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileHostPlan } from '../../src/core/compile/host-plan.js';
import { checkElement, emptyElements, renderElementChanges, renderTable, renderTableReplace } from '../../src/core/compile/nft-ruleset.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { assign, emptySnapshot, network, pool, vif, vm } from './fixtures.js';

const HOSTILE_MAC = '52:54:00:00:00:01 } }\ntable inet evil { chain c { type filter hook input priority 0; policy drop; } }\ntable bridge ipvisor { set vif_mac { type ifname . ether_addr; elements = { "x" . 52:54:00:00:00:02';

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof IpvisorError && err.code === 'VALIDATION' && pattern.test(err.message) && !err.message.includes('\n'));
}

test('a MAC carrying nft syntax, fed straight to the renderer, is an error', () => {
  const els = emptyElements();
  els.bridge.locked_ifs.push('"vnet3"');
  els.bridge.vif_mac.push(`"vnet3" . ${HOSTILE_MAC}`);
  refused(() => renderTable('bridge', els), /vif_mac.*not of the set's type/);
  refused(() => renderTableReplace('bridge', els), /vif_mac/);
  refused(() => renderElementChanges([{ family: 'bridge', set: 'vif_mac', add: els.bridge.vif_mac, remove: [] }]), /vif_mac/);
  refused(() => renderElementChanges([{ family: 'bridge', set: 'vif_mac', add: [], remove: els.bridge.vif_mac }], { blind: true }), /vif_mac/);
});

test('a stored VIF with such a MAC (a record from before validation) compiles to disabled, never to its value', () => {
  const s = emptySnapshot();
  const net = network({ name: 'lan', bridge: 'br-lan', defaultLocking: 'locked' });
  const p4 = pool(net, { family: 4 });
  const m = vm('web1');
  const f = vif(m, net, { mac: HOSTILE_MAC, ifname: 'vnet3' });
  const bad = network({ name: 'old', bridge: 'br:old', mode: 'nat' });
  s.networks.push(net, bad);
  s.pools.push(p4);
  s.vms.push(m);
  s.vifs.push(f);
  s.assignments.push(assign(f, p4, '10.0.0.5'));
  const plan = compileHostPlan(s, { links: { 'br-lan': { up: true, addresses: [] }, 'br:old': { up: true, addresses: [] } } });
  assert.deepEqual(plan.nft.bridge.disabled_ifs, ['"vnet3"']);
  assert.deepEqual(plan.nft.bridge.vif_mac, []);
  assert.deepEqual(plan.nft.inet.nat_bridges, ['"br-lan"'], 'the invalid bridge is left out');
  assert.ok(plan.warnings.some((w) => w.includes('enforced as disabled')));
  assert.ok(plan.warnings.some((w) => w.includes("bridge 'br:old' is not a valid interface name")));
  const text = renderTable('bridge', plan.nft) + renderTable('inet', plan.nft);
  assert.ok(!text.includes('evil'));
});

test('every set refuses values of another type, and takes its own', () => {
  const good: Array<[Parameters<typeof checkElement>[0], string, string]> = [
    ['bridge', 'locked_ifs', '"vnet3"'],
    ['bridge', 'disabled_ifs', '"vif5.0"'],
    ['bridge', 'vif_mac', '"vnet3" . 52:54:00:aa:bb:01'],
    ['bridge', 'vif_ip4', '"vnet3" . 10.0.0.5'],
    ['bridge', 'vif_net4', '"vnet3" . 203.0.113.8/29'],
    ['bridge', 'vif_net4', '"vnet3" . 203.0.113.8-203.0.113.15'],
    ['bridge', 'vif_ip6', '"vnet3" . 2001:db8::5'],
    ['bridge', 'vif_net6', '"vnet3" . 2001:db8:1::/64'],
    ['bridge', 'vif_nd6', `"vnet3" . 0x${'20010db8'.padEnd(32, '0')}`],
    ['bridge', 'vif_ndnet6', `"vnet3" . 0x${'1'.padStart(32, '0')}-0x${'f'.padStart(32, '0')}`],
    ['inet', 'routed4', '203.0.113.0/24'],
    ['inet', 'routed6', '2001:db8::/48'],
    ['inet', 'nat4', '192.168.100.0/24'],
    ['inet', 'nat_bridges', '"br-lan"'],
  ];
  for (const [f, set, e] of good) assert.doesNotThrow(() => checkElement(f, set, e), `${set} ${e}`);
  const bad: Array<[Parameters<typeof checkElement>[0], string, string]> = [
    ['bridge', 'locked_ifs', 'vnet3'],
    ['bridge', 'locked_ifs', '"vnet3" } ; flush ruleset ; {'],
    ['bridge', 'locked_ifs', '"a"b"'],
    ['bridge', 'locked_ifs', '"eth0:1"'],
    ['bridge', 'vif_mac', '"vnet3" . 52:54:00:aa:bb:01 }'],
    ['bridge', 'vif_mac', '"vnet3" . 52:54:00:AA:BB:01'],
    ['bridge', 'vif_ip4', '"vnet3" . 10.0.0.256'],
    ['bridge', 'vif_ip4', '"vnet3" . 10.0.0.0/24'],
    ['bridge', 'vif_ip6', '"vnet3" . 10.0.0.5'],
    ['bridge', 'vif_nd6', '"vnet3" . 0x12'],
    ['inet', 'routed4', '2001:db8::/48'],
    ['inet', 'routed4', '10.0.0.0/33'],
    ['inet', 'nat_bridges', '"br lan"'],
    ['inet', 'no_such_set', '"x"'],
  ];
  for (const [f, set, e] of bad) refused(() => checkElement(f, set, e), /refused/);
});

test('the renderer output of valid elements is unchanged', () => {
  const els = emptyElements();
  els.bridge.locked_ifs.push('"vnet3"');
  els.bridge.vif_mac.push('"vnet3" . 52:54:00:aa:bb:01');
  const text = renderTable('bridge', els);
  assert.match(text, /elements = \{ "vnet3" \. 52:54:00:aa:bb:01 \}/);
});
