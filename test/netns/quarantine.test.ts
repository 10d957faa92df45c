// Real packets: a tap on a managed bridge whose facts a libvirt hook cannot record (the probe's MAC
// carrying nft syntax) is enforced as disabled, both directions, and the hostile value never
// reaches nft; valid facts later lift it (issue 9). Root only; every namespace is removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyHost } from '../../src/agent/host/apply.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { runLibvirtHook, type HookDeps } from '../../src/agent/libvirt/hook.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { network } from '../compile/fixtures.js';
import { ETH_IP4, Topology, deliver, eth, ipv4, netnsSkipReason, udp, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = await netnsSkipReason();
const FIX = new URL('../libvirt/fixtures/', import.meta.url).pathname;
const DOM_UUID = '3aaa57e8-1e22-4bff-9586-6a05259a2f80';
const HOSTILE = `52:54:00:ab:00:01 } } table inet evil { chain c { type filter hook input priority 0; policy drop; } } table bridge x { set s { type ifname . ether_addr; elements = { "x" . 52:54:00:ab:00:01`;

describe('a tap whose facts cannot be recorded is disabled, with real packets', { skip: skip ?? false }, () => {
  const topo = new Topology();
  let restoreEnv = () => {};
  const dir = mkdtempSync(join(tmpdir(), 'ipv-quar-'));
  let store: Store;
  let q: VmNs, obs: VmNs;
  const MQ = '52:54:00:ab:00:01';
  const MO = '52:54:00:ab:00:0f';
  const logs: string[] = [];
  let deps: HookDeps;
  const domainXml = (mac: string) =>
    readFileSync(join(FIX, 'qemu-lvdom1-started-begin.xml'), 'utf8')
      .replaceAll('8c2a3b9e-0000-4000-8000-00000000d001', DOM_UUID)
      .replace("<mac address='52:54:00:12:34:56'/>", `<mac address='${mac}'/>`)
      .replace(/<source network='lvnat'[^/]*\/>/, `<source network='lvnat' bridge='${topo.bridge}'/>`)
      .replace("<target dev='vnet2'/>", `<target dev='${q.vif}'/>`);

  before(async () => {
    restoreEnv = useHostEnv({ IPVISOR_RUN_DIR: dir });
    await topo.create();
    const runner = createHostRunner({ netns: topo.host });
    q = await topo.addVm('q1', MQ);
    obs = await topo.addVm('ob', MO);
    store = await openStore(join(dir, 'db.sqlite'), { create: true });
    await store.insertNetwork(network({ name: 'lvnat', driver: 'libvirt', bridge: topo.bridge, mode: 'isolated', subnets: [{ cidr: '10.60.0.0/24', family: 4, gateway: '10.60.0.1' }] }));
    await applyHost(store, { actor: 'test', runner });
    deps = {
      openStore: async () => Object.assign(Object.create(store) as Store, { close: async () => undefined }),
      apply: async (s, scope, actor) => {
        await applyHost(s, { actor, scope, runner });
      },
      observeHost: async () => [],
      log: (l) => logs.push(l),
    };
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
  const frame = (from: string, to: string, marker: string) => ({ marker, frame: eth(to, from, ETH_IP4, ipv4('10.60.0.7', '10.60.0.8', 17, udp(4000, 4000, Buffer.from(marker)))) });

  test('before any fact: the tap is not filtered (what skipping it would leave)', async () => {
    assert.deepEqual([...(await deliver(tx(q), tx(obs), [frame(MQ, MO, 'open-out')]))], ['open-out']);
  });

  test('the probe: the hook refuses the MAC, disables the tap both ways, and nft never sees the value', async () => {
    const r = await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], domainXml(HOSTILE), deps);
    assert.equal(r.code, 0);
    assert.ok(logs.some((l) => l.includes(`tap ${q.vif} on network lvnat is enforced as disabled`)), logs.join('\n'));
    assert.equal((await deliver(tx(q), tx(obs), [frame(MQ, MO, 'q-out')])).size, 0, 'nothing out');
    assert.equal((await deliver(tx(obs), tx(q), [frame(MO, MQ, 'q-in')])).size, 0, 'nothing in');
    const ruleset = await topo.inHost(['nft', 'list', 'ruleset']);
    assert.ok(!ruleset.includes('evil'), 'no foreign table');
    assert.match(ruleset, new RegExp(`set disabled_ifs \\{[^}]*"${q.vif}"`));
  });

  test('valid facts lift the quarantine: the VIF takes the tap over', async () => {
    const r = await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], domainXml(MQ), deps);
    assert.equal(r.code, 0);
    const [vif] = await store.listVifs(DOM_UUID);
    assert.equal(vif?.ifname, q.vif);
    // unlocked network default, no address: the VIF is unlocked, so traffic passes again
    assert.deepEqual([...(await deliver(tx(q), tx(obs), [frame(MQ, MO, 'back')]))], ['back']);
    const ruleset = await topo.inHost(['nft', 'list', 'ruleset']);
    assert.doesNotMatch(ruleset, new RegExp(`set disabled_ifs \\{[^}]*"${q.vif}"`));
  });
});
