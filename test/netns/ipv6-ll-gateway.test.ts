// A routed network whose IPv6 subnet has a link-local gateway (fe80::1, the usual choice): apply
// puts fe80::1 on the bridge and routes the subnet there, so the VM's default route via fe80::1
// works both ways; a second apply changes nothing; teardown removes both. Root only; namespaces
// removed in `after`.
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

describe('IPv6 link-local gateway on a routed bridge network', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-ll-'));
  let restoreEnv = () => {};
  let store: Store;
  let vm1: VmNs;
  let up: { ns: string; uplink: string };
  let runner: ReturnType<typeof createHostRunner>;

  before(async () => {
    restoreEnv = useHostEnv({ IPVISOR_RUN_DIR: dir });
    await topo.create();
    runner = createHostRunner({ netns: topo.host });
    await topo.inHost(['sysctl', '-q', '-w', `net.ipv6.conf.${topo.bridge}.accept_dad=0`]);
    vm1 = await topo.addVm('g1', '52:54:00:dd:01:01', { addresses: ['2001:db8:61::10/64'] });
    await topo.inNs(vm1.ns, ['ip', '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0']);
    up = await topo.addUpstream('2001:db8:ff::1/64', ['2001:db8:ff::2/64']);
    await topo.inNs(up.ns, ['ip', '-6', 'route', 'add', '2001:db8:61::/64', 'via', '2001:db8:ff::1']);
    store = await openStore(join(dir, 'db.sqlite'), { create: true });
    const net = network({ name: 'v6ll', bridge: topo.bridge, mode: 'routed', subnets: [{ cidr: '2001:db8:61::/64', family: 6, gateway: 'fe80::1' }] });
    const p6 = pool(net, { family: 6 });
    await store.insertNetwork(net);
    await store.insertPool(p6);
    const a = vm('g');
    await store.insertVm(a);
    const f = vif(a, net, { mac: vm1.mac, ifname: vm1.vif });
    await store.insertVif(f);
    await store.insertAssignment(assign(f, p6, '2001:db8:61::10'));
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

  const ping = (ns: string, addr: string) =>
    topo.inNs(ns, ['ping', '-6', '-c', '3', '-i', '0.4', '-w', '3', addr], { allowFail: true }).then((o) => / [1-9]\d* received/.test(o));

  test('apply: fe80::1 on the bridge, the subnet routed to it; the VM reaches upstream and back', async () => {
    const changes = await applyHost(store, { actor: 'test', runner });
    assert.ok(changes.some((c) => c.kind === 'address' && c.target === `fe80::1/64 dev ${topo.bridge}`), JSON.stringify(changes));
    assert.ok(changes.some((c) => c.kind === 'route' && c.target === `2001:db8:61::/64 dev ${topo.bridge}`), JSON.stringify(changes));
    assert.equal(await ping(up.ns, '2001:db8:61::10'), true, 'upstream reaches the VM');
    assert.equal(await ping(vm1.ns, '2001:db8:ff::2'), true, 'the VM reaches upstream through fe80::1');
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), []);
  });

  test('ipvisor\'s default route via a link-local next hop goes on the network\'s bridge', async () => {
    const net = (await store.listNetworks())[0];
    await store.putDoc('host-setting', 'gateway', { via: 'FE80::2', whenUp: net.uuid, metric: 1 });
    const changes = await applyHost(store, { actor: 'test', runner });
    assert.ok(changes.some((c) => c.kind === 'route' && c.target === `default via fe80::2 dev ${topo.bridge} metric 1`), JSON.stringify(changes));
    assert.match(await topo.inHost(['ip', '-6', 'route', 'show', 'default']), new RegExp(`default via fe80::2 dev ${topo.bridge} proto 250 metric 1`));
    assert.deepEqual(await applyHost(store, { actor: 'test', runner }), [], 'no churn');
  });

  test('teardown removes the link-local gateway and the subnet route', async () => {
    await teardownHost(store, { actor: 'test', runner });
    assert.doesNotMatch(await topo.inHost(['ip', '-6', 'addr', 'show', 'dev', topo.bridge]), /fe80::1\/64/);
    assert.equal((await topo.inHost(['ip', '-6', 'route', 'show', 'proto', '250'])).trim(), '');
  });
});
