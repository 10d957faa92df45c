// IPv6 on a NAT network ipvisor owns: the stateful inbound filter (new inbound connections
// dropped, replies pass), and a routed IPv6 address reachable from upstream through proxy NDP.
// Root only; namespaces removed in `after`.
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
import { Topology, netnsSkipReason, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = await netnsSkipReason();

describe('IPv6: stateful inbound filter and routed address', { skip: skip ?? false }, () => {
  const topo = new Topology();
  let restoreEnv = () => {};
  const dir = mkdtempSync(join(tmpdir(), 'ipv-v6-'));
  let store: Store;
  let vm1: VmNs;
  let up: { ns: string; uplink: string };
  let runner: ReturnType<typeof createHostRunner>;

  before(async () => {
    restoreEnv = useHostEnv({ IPVISOR_RUN_DIR: dir });
    await topo.create();
    runner = createHostRunner({ netns: topo.host });
    await topo.inHost(['sysctl', '-q', '-w', `net.ipv6.conf.${topo.bridge}.accept_dad=0`]);
    vm1 = await topo.addVm('s1', '52:54:00:dd:00:01', { addresses: ['2001:db8:60::10/64', '2001:db8:99::5/128'] });
    await topo.inNs(vm1.ns, ['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:60::1']);
    up = await topo.addUpstream('2001:db8:ff::1/64', ['2001:db8:ff::2/64', '2001:db8:99::1/64']);
    await topo.inHost(['sysctl', '-q', '-w', `net.ipv6.conf.${up.uplink}.accept_dad=0`]);
    await topo.inNs(up.ns, ['sysctl', '-q', '-w', 'net.ipv6.conf.eth0.accept_dad=0']);
    await topo.inNs(up.ns, ['ip', '-6', 'route', 'add', '2001:db8:60::/64', 'via', '2001:db8:ff::1']);
    await topo.inHost(['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:ff::2']);
    store = await openStore(join(dir, 'db.sqlite'), { create: true });
    const net = network({ name: 'v6nat', bridge: topo.bridge, mode: 'nat', uplink: up.uplink, subnets: [{ cidr: '2001:db8:60::/64', family: 6, gateway: '2001:db8:60::1' }] });
    const p6 = pool(net, { family: 6 });
    const pr6 = pool(net, { family: 6, purpose: 'routed' });
    await store.insertNetwork(net);
    await store.insertPool(p6);
    await store.insertPool(pr6);
    const a = vm('s');
    await store.insertVm(a);
    const f = vif(a, net, { mac: vm1.mac, ifname: vm1.vif });
    await store.insertVif(f);
    await store.insertAssignment(assign(f, p6, '2001:db8:60::10'));
    await store.insertAssignment(assign(f, pr6, '2001:db8:99::5', { kind: 'routed' }));
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

  const ping = (ns: string, addr: string, from?: string) =>
    topo.inNs(ns, ['ping', '-6', '-c', '3', '-i', '0.4', '-w', '3', ...(from ? ['-I', from] : []), addr], { allowFail: true }).then((o) => / [1-9]\d* received/.test(o));

  test('without ipvisor\'s filter, new inbound IPv6 reaches the VM (so the next test can fail)', async () => {
    await topo.inHost(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    await topo.inHost(['ip', 'addr', 'add', '2001:db8:60::1/64', 'dev', topo.bridge, 'nodad']);
    try {
      assert.equal(await ping(up.ns, '2001:db8:60::10'), true);
    } finally {
      await topo.inHost(['ip', 'addr', 'del', '2001:db8:60::1/64', 'dev', topo.bridge]);
      await topo.inHost(['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=0']);
    }
  });

  test('apply: outbound IPv6 works, new inbound is dropped, the routed address is reachable via proxy NDP', async () => {
    const changes = await applyHost(store, { actor: 'test', runner });
    assert.ok(changes.some((c) => c.kind === 'sysctl' && c.target === 'net.ipv6.conf.all.forwarding'));
    assert.ok(changes.some((c) => c.kind === 'proxy-neighbour' && c.target.startsWith('2001:db8:99::5 ')));
    assert.equal(await ping(vm1.ns, '2001:db8:ff::2', '2001:db8:60::10'), true, 'outbound and its replies');
    assert.equal(await ping(up.ns, '2001:db8:60::10'), false, 'new inbound connection dropped');
    assert.equal(await ping(up.ns, '2001:db8:99::5'), true, 'routed address reachable from upstream');
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), []);
  });

  test('teardown restores forwarding and proxy_ndp', async () => {
    await teardownHost(store, { actor: 'test', runner });
    assert.equal((await topo.inHost(['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).trim(), '0');
    assert.equal((await topo.inHost(['sysctl', '-n', `net.ipv6.conf.${up.uplink}.proxy_ndp`])).trim(), '0');
    assert.equal((await topo.inHost(['ip', '-6', 'neigh', 'show', 'proxy'])).trim(), '');
  });
});
