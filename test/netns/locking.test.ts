// Real packets through a real bridge with ipvisor's nftables tables: every spoofing case dropped
// while its allowed twin passes. Root only; every namespace is removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyHost, teardownHost } from '../../src/agent/host/apply.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { assign, network, pool, vif, vm } from '../compile/fixtures.js';
import { ETH_ARP, ETH_IP4, ETH_IP6, Topology, arp, deliver, eth, icmpv6, ipv4, ipv6, ndBody, netnsSkipReason, udp, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = await netnsSkipReason();

describe('VIF locking with real packets', { skip: skip ?? false }, () => {
  const topo = new Topology();
  let restoreEnv = () => {};
  const dir = mkdtempSync(join(tmpdir(), 'ipv-netns-'));
  let store: Store;
  let vm1: VmNs, vm2: VmNs, vm3: VmNs, vm4: VmNs, obs: VmNs;
  const M1 = '52:54:00:aa:00:01';
  const M2 = '52:54:00:aa:00:02';
  const M3 = '52:54:00:aa:00:03';
  const M4 = '52:54:00:aa:00:04';
  const MO = '52:54:00:aa:00:0f';
  const BC = 'ff:ff:ff:ff:ff:ff';
  const MC6 = '33:33:00:00:00:01';
  let runner: ReturnType<typeof createHostRunner>;

  before(async () => {
    restoreEnv = useHostEnv({ IPVISOR_RUN_DIR: dir });
    await topo.create();
    runner = createHostRunner({ netns: topo.host });
    vm1 = await topo.addVm('v1', M1);
    vm2 = await topo.addVm('v2', M2);
    vm3 = await topo.addVm('v3', M3);
    vm4 = await topo.addVm('v4', M4);
    obs = await topo.addVm('ob', MO);
    store = await openStore(join(dir, 'db.sqlite'), { create: true });
    const net = network({ name: 'vms', bridge: topo.bridge, mode: 'isolated', subnets: [
      { cidr: '10.50.0.0/24', family: 4, gateway: '10.50.0.1' },
      { cidr: '2001:db8:50::/64', family: 6, gateway: '2001:db8:50::1' },
    ] });
    const p4 = pool(net, { family: 4 });
    const p6 = pool(net, { family: 6 });
    await store.insertNetwork(net);
    await store.insertPool(p4);
    await store.insertPool(p6);
    const a = vm('a');
    await store.insertVm(a);
    const f1 = vif(a, net, { mac: M1, ifname: vm1.vif, device: 0 });
    const f2 = vif(a, net, { mac: M2, ifname: vm2.vif, device: 1, locking: 'locked' });
    const f3 = vif(a, net, { mac: M3, ifname: vm3.vif, device: 2, locking: 'disabled' });
    const f4 = vif(a, net, { mac: M4, ifname: vm4.vif, device: 3 }); // no address, unlocked network default
    for (const f of [f1, f2, f3, f4]) await store.insertVif(f);
    await store.insertAssignment(assign(f1, p4, '10.50.0.10'));
    await store.insertAssignment(assign(f1, p6, '2001:db8:50::10'));
    const changes = await applyHost(store, { actor: 'test', runner });
    assert.ok(changes.some((c) => c.kind === 'nft-table'), 'first apply creates the tables');
  });

  after(async () => {
    try {
      await store?.close();
    } finally {
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
      restoreEnv();
    }
  });

  const tx = (v: VmNs) => ({ ns: v.ns, ifname: 'eth0' });

  test('a second apply reports no changes', async () => {
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), []);
  });

  test('locked VIF: allowed traffic passes, each spoof is dropped', async () => {
    const u4 = (src: string, m: string, s = 4000, d = 4000) => ipv4(src, '10.50.0.200', 17, udp(s, d, Buffer.from(m)));
    const u6 = (src: string, m: string, s = 4000, d = 4000) => ipv6(src, '2001:db8:50::200', 17, udp(s, d, Buffer.from(m)));
    const frames = [
      // allowed
      { marker: 'ok-ipv4', frame: eth(MO, M1, ETH_IP4, u4('10.50.0.10', 'ok-ipv4')) },
      { marker: 'ok-arp', frame: eth(BC, M1, ETH_ARP, Buffer.concat([arp(1, M1, '10.50.0.10', '00:00:00:00:00:00', '10.50.0.1'), Buffer.from('ok-arp')])) },
      { marker: 'ok-ipv6', frame: eth(MO, M1, ETH_IP6, u6('2001:db8:50::10', 'ok-ipv6')) },
      { marker: 'ok-linklocal', frame: eth(MO, M1, ETH_IP6, u6('fe80::5054:ff:feaa:1', 'ok-linklocal')) },
      { marker: 'ok-na-own', frame: eth(MC6, M1, ETH_IP6, ipv6('fe80::1', 'ff02::1', 58, Buffer.concat([ndBody(136, '2001:db8:50::10'), Buffer.from('ok-na-own')]))) },
      { marker: 'ok-na-ll', frame: eth(MC6, M1, ETH_IP6, ipv6('fe80::1', 'ff02::1', 58, Buffer.concat([ndBody(136, 'fe80::1'), Buffer.from('ok-na-ll')]))) },
      { marker: 'ok-dad', frame: eth(MC6, M1, ETH_IP6, ipv6('::', 'ff02::1:ff00:10', 58, Buffer.concat([ndBody(135, '2001:db8:50::10'), Buffer.from('ok-dad')]))) },
      { marker: 'ok-dhcp', frame: eth(BC, M1, ETH_IP4, ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67, Buffer.from('ok-dhcp')))) },
      // dropped
      { marker: 'bad-ipv4-src', frame: eth(MO, M1, ETH_IP4, u4('10.50.0.99', 'bad-ipv4-src')) },
      { marker: 'bad-mac', frame: eth(MO, '52:54:00:aa:00:99', ETH_IP4, u4('10.50.0.10', 'bad-mac')) },
      { marker: 'bad-arp-ip', frame: eth(BC, M1, ETH_ARP, Buffer.concat([arp(2, M1, '10.50.0.99', BC, '10.50.0.99'), Buffer.from('bad-arp-ip')])) },
      { marker: 'bad-arp-mac', frame: eth(BC, M1, ETH_ARP, Buffer.concat([arp(2, '52:54:00:aa:00:99', '10.50.0.10', BC, '10.50.0.10'), Buffer.from('bad-arp-mac')])) },
      { marker: 'bad-ipv6-src', frame: eth(MO, M1, ETH_IP6, u6('2001:db8:50::99', 'bad-ipv6-src')) },
      { marker: 'bad-na-target', frame: eth(MC6, M1, ETH_IP6, ipv6('fe80::1', 'ff02::1', 58, Buffer.concat([ndBody(136, '2001:db8:50::99'), Buffer.from('bad-na-target')]))) },
      { marker: 'bad-dad-target', frame: eth(MC6, M1, ETH_IP6, ipv6('::', 'ff02::1:ff00:99', 58, Buffer.concat([ndBody(135, '2001:db8:50::99'), Buffer.from('bad-dad-target')]))) },
      { marker: 'bad-ra', frame: eth(MC6, M1, ETH_IP6, ipv6('fe80::1', 'ff02::1', 58, Buffer.concat([icmpv6(134, Buffer.alloc(12)), Buffer.from('bad-ra')]))) },
      { marker: 'bad-dhcp-server', frame: eth(BC, M1, ETH_IP4, ipv4('10.50.0.10', '255.255.255.255', 17, udp(67, 68, Buffer.from('bad-dhcp-server')))) },
      { marker: 'bad-dhcp6-server', frame: eth(MO, M1, ETH_IP6, u6('fe80::1', 'bad-dhcp6-server', 547, 546)) },
      { marker: 'bad-ethertype', frame: eth(MO, M1, 0x88b5, Buffer.from('bad-ethertype')) },
      { marker: 'bad-vlan', frame: eth(MO, M1, 0x8100, Buffer.concat([Buffer.from([0, 5, 0x08, 0x00]), u4('10.50.0.10', 'bad-vlan')])) },
    ];
    const got = await deliver(tx(vm1), tx(obs), frames);
    const passed = frames.filter((f) => got.has(f.marker)).map((f) => f.marker);
    assert.deepEqual(passed, frames.filter((f) => f.marker.startsWith('ok-')).map((f) => f.marker));
  });

  test('locked VIF with no addresses sends only DHCP requests and ARP probes', async () => {
    const frames = [
      { marker: 'ok-dhcp', frame: eth(BC, M2, ETH_IP4, ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67, Buffer.from('ok-dhcp')))) },
      { marker: 'ok-probe', frame: eth(BC, M2, ETH_ARP, Buffer.concat([arp(1, M2, '0.0.0.0', '00:00:00:00:00:00', '10.50.0.20'), Buffer.from('ok-probe')])) },
      { marker: 'bad-ipv4', frame: eth(MO, M2, ETH_IP4, ipv4('10.50.0.20', '10.50.0.200', 17, udp(1, 2, Buffer.from('bad-ipv4')))) },
      { marker: 'bad-garp', frame: eth(BC, M2, ETH_ARP, Buffer.concat([arp(1, M2, '10.50.0.20', '00:00:00:00:00:00', '10.50.0.20'), Buffer.from('bad-garp')])) },
      { marker: 'bad-ipv6', frame: eth(MO, M2, ETH_IP6, ipv6('2001:db8:50::20', '2001:db8:50::200', 17, udp(1, 2, Buffer.from('bad-ipv6')))) },
      { marker: 'bad-dhcp-unicast-src', frame: eth(BC, M2, ETH_IP4, ipv4('10.50.0.20', '255.255.255.255', 17, udp(68, 67, Buffer.from('bad-dhcp-unicast-src')))) },
    ];
    const got = await deliver(tx(vm2), tx(obs), frames);
    assert.deepEqual([...got].sort(), ['ok-dhcp', 'ok-probe']);
  });

  test('disabled VIF: nothing passes, in either direction', async () => {
    const out = [
      { marker: 'dis-dhcp', frame: eth(BC, M3, ETH_IP4, ipv4('0.0.0.0', '255.255.255.255', 17, udp(68, 67, Buffer.from('dis-dhcp')))) },
      { marker: 'dis-arp', frame: eth(BC, M3, ETH_ARP, Buffer.concat([arp(1, M3, '0.0.0.0', '00:00:00:00:00:00', '10.50.0.30'), Buffer.from('dis-arp')])) },
    ];
    assert.equal((await deliver(tx(vm3), tx(obs), out)).size, 0);
    const inbound = [
      { marker: 'to-dis-bc', frame: eth(BC, MO, ETH_IP4, ipv4('10.50.0.200', '255.255.255.255', 17, udp(1, 2, Buffer.from('to-dis-bc')))) },
      { marker: 'to-dis-uc', frame: eth(M3, MO, ETH_IP4, ipv4('10.50.0.200', '10.50.0.30', 17, udp(1, 2, Buffer.from('to-dis-uc')))) },
    ];
    assert.equal((await deliver(tx(obs), tx(vm3), inbound)).size, 0);
    // the same broadcast reaches an unlocked VIF, so the listener works
    assert.ok((await deliver(tx(obs), tx(vm4), inbound)).has('to-dis-bc'));
  });

  test('unlocked VIF (network default unlocked, no address): no filter', async () => {
    const frames = [{ marker: 'any-src', frame: eth(MO, '52:54:00:aa:00:77', ETH_IP4, ipv4('10.99.0.1', '10.50.0.200', 17, udp(1, 2, Buffer.from('any-src')))) }];
    assert.ok((await deliver(tx(vm4), tx(obs), frames)).has('any-src'));
  });

  test('assigning an address to the unlocked VIF locks it; the one-VIF path changes only elements', async () => {
    const v = (await store.listVifs()).find((x) => x.ifname === vm4.vif)!;
    const p4 = (await store.listPools()).find((p) => p.family === 4)!;
    await store.insertAssignment(assign(v, p4, '10.50.0.40'));
    const changes = await applyHost(store, { actor: 'test', runner, scope: { vifUuid: v.uuid } });
    assert.ok(changes.length > 0 && changes.every((c) => c.kind === 'nft-element'), JSON.stringify(changes));
    const frames = [
      { marker: 'ok-own', frame: eth(MO, M4, ETH_IP4, ipv4('10.50.0.40', '10.50.0.200', 17, udp(1, 2, Buffer.from('ok-own')))) },
      { marker: 'bad-other', frame: eth(MO, M4, ETH_IP4, ipv4('10.99.0.1', '10.50.0.200', 17, udp(1, 2, Buffer.from('bad-other')))) },
    ];
    assert.deepEqual([...(await deliver(tx(vm4), tx(obs), frames))], ['ok-own']);
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), [], 'the full path agrees with the one-VIF path');
  });

  test('the one-VIF path falls back to a full apply when the tables are gone', async () => {
    await topo.inHost(['nft', 'flush', 'ruleset']);
    const v = (await store.listVifs()).find((x) => x.ifname === vm1.vif)!;
    const changes = await applyHost(store, { actor: 'test', runner, scope: { vifUuid: v.uuid } });
    assert.ok(changes.some((c) => c.kind === 'nft-table' && c.target === 'bridge ipvisor'), JSON.stringify(changes.slice(0, 3)));
    const frames = [{ marker: 'spoof-after-flush', frame: eth(MO, M1, ETH_IP4, ipv4('10.50.0.99', '10.50.0.200', 17, udp(1, 2, Buffer.from('spoof-after-flush')))) }];
    assert.equal((await deliver(tx(vm1), tx(obs), frames)).size, 0);
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), []);
  });

  test('a VM started on an interface a stale VIF still holds: only the new binding is enforced', async () => {
    // vm1's VIF keeps its binding (its VM "stopped" without an unbind: a host crash); a new VM's VIF
    // gets the same interface name, through the hook's one-VIF path
    const M5 = '52:54:00:aa:00:05';
    const net = (await store.listNetworks())[0];
    const p4 = (await store.listPools()).find((p) => p.family === 4)!;
    const b = vm('b');
    await store.insertVm(b);
    const g = vif(b, net, { mac: M5, ifname: vm1.vif, locking: 'locked', updatedAt: new Date().toISOString() });
    await store.insertVif(g);
    await store.insertAssignment(assign(g, p4, '10.50.0.50'));
    await applyHost(store, { actor: 'test', runner, scope: { vifUuid: g.uuid } });
    const frames = [
      { marker: 'new-vm', frame: eth(MO, M5, ETH_IP4, ipv4('10.50.0.50', '10.50.0.200', 17, udp(1, 2, Buffer.from('new-vm')))) },
      { marker: 'stale-identity', frame: eth(MO, M1, ETH_IP4, ipv4('10.50.0.10', '10.50.0.200', 17, udp(1, 2, Buffer.from('stale-identity')))) },
    ];
    assert.deepEqual([...(await deliver(tx(vm1), tx(obs), frames))], ['new-vm']);
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), [], 'the full path agrees');
    // the stale VIF is unbound at last (its VM's stop hook): the new VM's elements stay
    const stale = (await store.listVifs()).find((x) => x.mac === M1)!;
    await store.updateVif({ ...stale, ifname: null, updatedAt: new Date().toISOString() });
    await applyHost(store, { actor: 'test', runner, scope: { vifUuid: stale.uuid } });
    const after = [
      { marker: 'new-vm-again', frame: eth(MO, M5, ETH_IP4, ipv4('10.50.0.50', '10.50.0.200', 17, udp(1, 2, Buffer.from('new-vm-again')))) },
      { marker: 'new-vm-spoof', frame: eth(MO, M5, ETH_IP4, ipv4('10.50.0.99', '10.50.0.200', 17, udp(1, 2, Buffer.from('new-vm-spoof')))) },
    ];
    assert.deepEqual([...(await deliver(tx(vm1), tx(obs), after))], ['new-vm-again'], 'the interface is still locked to the new VM');
    // put the old binding back for the tests that follow
    const gNow = (await store.listVifs()).find((x) => x.uuid === g.uuid)!;
    await store.updateVif({ ...gNow, ifname: null, updatedAt: new Date().toISOString() });
    await store.updateVif({ ...stale, ifname: vm1.vif, updatedAt: new Date().toISOString() });
    await applyHost(store, { actor: 'test', runner });
  });

  test('teardown removes the tables; spoofed frames pass again', async () => {
    await teardownHost(store, { actor: 'test', runner });
    const tables = await topo.inHost(['nft', 'list', 'tables']);
    assert.ok(!tables.includes('ipvisor'));
    const frames = [{ marker: 'spoof-after-teardown', frame: eth(MO, M1, ETH_IP4, ipv4('10.50.0.99', '10.50.0.200', 17, udp(1, 2, Buffer.from('spoof-after-teardown')))) }];
    assert.ok((await deliver(tx(vm1), tx(obs), frames)).has('spoof-after-teardown'));
  });
});
