// The Windows push's decisions, evaluated in TypeScript against observations of Windows guests
// (test/guest/windows/*.json, in the shape the observation script prints): which actions the push
// takes, that they reach the document, that an already-applied guest gets none, that the rollback
// the guard runs brings the observation back, and that the generated PowerShell (apply, rollback,
// guard, arm, disarm, observe) parses with the tree-sitter PowerShell grammar. What is NOT verified
// here: the cmdlets' behaviour on a real Windows (there is no Windows or pwsh on this machine);
// `simulateWindows` models it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { parseStepReport } from '../../src/core/guest/renderers/ip.js';
import {
  actionCommand,
  desiredFromObserved,
  parseWindowsObservation,
  renderWindowsActions,
  renderWindowsArm,
  simulateWindows,
  windowsActions,
  windowsDesired,
  WINDOWS_OBSERVE_SCRIPT,
  type WinObserved,
} from '../../src/core/guest/windows-plan.js';
import { validatePowerShell } from './validators.js';

const fixture = (name: string): WinObserved => parseWindowsObservation(readFileSync(new URL(`./windows/${name}`, import.meta.url), 'utf8'));

// corpus document 29 (openstack-networkd's Windows sample) plus a second NIC with v4+v6 and a route
const doc = {
  links: [
    { id: 'tap854477c8-bb', type: 'ovs', ethernet_mac_address: '00:15:5D:64:98:60', mtu: 1450 },
    { id: 'tap2', type: 'ovs', ethernet_mac_address: '00:15:5D:64:98:61' },
  ],
  networks: [
    { id: 'network0', link: 'tap854477c8-bb', type: 'ipv4', ip_address: '192.168.5.17', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.168.5.1' }], services: [{ type: 'dns', address: '8.8.8.8' }] },
    { id: 'network1', link: 'tap2', type: 'ipv4', ip_address: '10.20.0.5', netmask: '255.255.255.0', routes: [{ network: '10.30.0.0', netmask: '255.255.0.0', gateway: '10.20.0.1' }] },
    { id: 'network2', link: 'tap2', type: 'ipv6', ip_address: '2001:db8:20::5/64', routes: [] },
  ],
  services: [{ type: 'dns', address: '8.8.8.8', search: ['lab.example'] }],
};
const state = parseNetworkData(doc, { nicNames: { '00:15:5d:64:98:60': 'eth0', '00:15:5d:64:98:61': 'eth1' } });
const sorted = (o: WinObserved) => {
  const d = desiredFromObserved(o);
  return { search: d.search, adapters: d.adapters.map((a) => ({ ...a, addresses: [...a.addresses].sort((x, y) => x.address.localeCompare(y.address)), routes: [...a.routes].sort((x, y) => x.destination.localeCompare(y.destination)) })).sort((x, y) => x.mac.localeCompare(y.mac)) };
};

test('observation parsing copes with ConvertTo-Json: bare values for one item, %zone, adapters without MAC left out', () => {
  const o = fixture('fresh-3nic.json');
  assert.deepEqual(o.adapters.map((a) => [a.alias, a.mac, a.dhcp4]), [
    ['Ethernet', '00:15:5d:64:98:60', true],
    ['Ethernet 2', '00:15:5d:64:98:61', false],
    ['Ethernet 3', '00:15:5d:64:98:62', true],
  ]);
  assert.deepEqual(o.adapters[2]!.addresses, [{ address: '172.16.0.7', prefixLength: 24, family: 4, origin: 'Dhcp' }]);
  assert.deepEqual(o.adapters[2]!.dns, ['172.16.0.1']);
  assert.equal(o.adapters[0]!.addresses[1]!.address, 'fe80::1c2a:5ff:fe64:9860');
});

test('decisions on a fresh guest: adapters found by MAC and renamed; only what differs changes; the adapter not in the document gets nothing', () => {
  const o = fixture('fresh-3nic.json');
  const actions = windowsActions(windowsDesired(state), o);
  assert.deepEqual(actions, [
    { kind: 'rename', alias: 'Ethernet', to: 'eth0' },
    { kind: 'mtu', alias: 'eth0', mtu: 1450 },
    { kind: 'dhcp4', alias: 'eth0', enabled: false },
    { kind: 'addr-add', alias: 'eth0', address: '192.168.5.17', prefixLength: 24 },
    // DHCP goes off: the lease's gateway goes with it, so the document's default route is added
    { kind: 'route-add', alias: 'eth0', destination: '0.0.0.0/0', nextHop: '192.168.5.1', metric: null },
    { kind: 'dns', alias: 'eth0', servers: ['8.8.8.8'] },
    { kind: 'rename', alias: 'Ethernet 2', to: 'eth1' },
    { kind: 'addr-add', alias: 'eth1', address: '10.20.0.5', prefixLength: 24 },
    { kind: 'addr-add', alias: 'eth1', address: '2001:db8:20::5', prefixLength: 64 },
    { kind: 'addr-del', alias: 'eth1', address: '10.20.0.9', prefixLength: 24 },
    { kind: 'route-del', alias: 'eth1', destination: '10.30.0.0/16', nextHop: '10.20.0.254', metric: 256 },
    { kind: 'route-add', alias: 'eth1', destination: '10.30.0.0/16', nextHop: '10.20.0.1', metric: null },
    { kind: 'search', search: ['lab.example'] },
  ]);
  assert.ok(!actions.some((x) => 'alias' in x && x.alias === 'Ethernet 3'));
  // the actions reach the document: decided again on the predicted result, nothing is left to do
  const after = simulateWindows(o, actions);
  assert.deepEqual(windowsActions(windowsDesired(state), after), []);
  // and the prediction is what the recorded post-push observation shows
  assert.deepEqual(sorted(after), sorted(fixture('applied-3nic.json')));
});

test('an already applied guest gets no action at all (a push of the same document touches nothing)', () => {
  assert.deepEqual(windowsActions(windowsDesired(state), fixture('applied-3nic.json')), []);
});

test('the rollback the guard runs is decided the other way and restores the observation', () => {
  const o = fixture('fresh-3nic.json');
  const actions = windowsActions(windowsDesired(state), o);
  const pushed = simulateWindows(o, actions);
  const rollback = windowsActions(desiredFromObserved(o), pushed);
  assert.ok(rollback.some((x) => x.kind === 'rename' && x.to === 'Ethernet'));
  assert.ok(rollback.some((x) => x.kind === 'dhcp4' && x.enabled));
  assert.deepEqual(sorted(simulateWindows(pushed, rollback)), sorted(o));
});

test('a MAC the guest does not have is refused before anything runs', () => {
  const other = parseNetworkData({ ...doc, links: [doc.links[0], { ...doc.links[1], ethernet_mac_address: '02:00:00:00:99:99' }] }, {});
  assert.throws(() => windowsActions(windowsDesired(other), fixture('fresh-3nic.json')), /guest has no network adapter with MAC 02:00:00:00:99:99/);
});

test('the generated PowerShell is straight-line (one step per decided action) and parses with the tree-sitter grammar', async () => {
  const o = fixture('fresh-3nic.json');
  const actions = windowsActions(windowsDesired(state), o);
  const apply = renderWindowsActions(actions, 'applies');
  const rollback = renderWindowsActions(windowsActions(desiredFromObserved(o), simulateWindows(o, actions)), 'restores');
  const steps = apply.split('\r\n').filter((l) => l.startsWith('Invoke-IpvisorStep '));
  assert.equal(steps.length, actions.length);
  actions.forEach((x, n) => assert.ok(steps[n]!.endsWith(`{ ${actionCommand(x)} }`), steps[n]));
  const body = apply.split('\r\n').slice(apply.split('\r\n').indexOf('}') + 1).filter((l) => l && !l.startsWith('Invoke-IpvisorStep '));
  assert.deepEqual(body, ['if ($failed -gt 0) { exit 1 }', 'exit 0']);
  const guard = renderWindowsArm('C:\\Windows\\Temp\\ipvisor', 120);
  assert.match(guard.arm, /Register-ScheduledTask -TaskName 'ipvisor-network-rollback'/);
  assert.match(guard.guard, /if \(-not \(Test-Path 'C:\\Windows\\Temp\\ipvisor\\confirm'\)\)/);
  const problems = await validatePowerShell({ 'apply.ps1': apply, 'rollback.ps1': rollback, 'arm.ps1': guard.arm, 'guard.ps1': guard.guard, 'disarm.ps1': guard.disarm, 'observe.ps1': WINDOWS_OBSERVE_SCRIPT });
  assert.deepEqual(problems, []);
  // a failing step's report is what the push reads (Write-Output from Invoke-IpvisorStep)
  assert.deepEqual(parseStepReport(`ipvisor-step-failed: ${actionCommand(actions[3]!)}: Instance MSFT_NetIPAddress already exists\r\n`.replace(/\r/g, '')).failed, [`${actionCommand(actions[3]!)}: Instance MSFT_NetIPAddress already exists`]);
});
