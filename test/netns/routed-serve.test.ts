// Routed IPs reachable from upstream (route + proxy ARP on the uplink), NAT for a bridge network,
// the CLI's plan/apply/teardown, and `serve` repairing `nft flush ruleset` and a deleted route.
// Root only; the namespaces and the serve process are removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliInEnv } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { network, seedRoutedVif, vif, vm } from '../compile/fixtures.js';
import { Topology, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { netnsSkipReason } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { until } from '../support/until.js';

guardRootNamespace();

const skip = await netnsSkipReason();

const cli = cliInEnv;

describe('routed IPs, NAT, CLI and serve', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-routed-'));
  const db = join(dir, 'db.sqlite');
  let store: Store;
  let vm1: VmNs;
  let up: { ns: string; uplink: string };
  let serveProc: ChildProcess | undefined;
  let restoreEnv = () => {};

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    vm1 = await topo.addVm('r1', '52:54:00:bb:00:01', { addresses: ['10.60.0.10/24', '203.0.113.5/32'], gateway4: '10.60.0.1' });
    up = await topo.addUpstream('198.18.0.1/24', ['198.18.0.2/24', '203.0.113.1/24']);
    await topo.inHost(['ip', 'route', 'add', 'default', 'via', '198.18.0.2']);
    store = await openStore(db, { create: true });
    const net = network({ name: 'pub', bridge: topo.bridge, mode: 'nat', uplink: up.uplink, subnets: [{ cidr: '10.60.0.0/24', family: 4, gateway: '10.60.0.1' }] });
    await seedRoutedVif(store, net, { vm: 'r', mac: vm1.mac, ifname: vm1.vif, address: '10.60.0.10', routed: '203.0.113.5' });
    await store.close();
  });

  after(async () => {
    try {
      if (serveProc && serveProc.exitCode === null) {
        const p = serveProc;
        await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')));
      }
    } finally {
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
      restoreEnv();
    }
  });

  const ping = (ns: string, addr: string, from?: string) =>
    // proxy ARP answers after a random delay of up to proxy_delay (0.8 s): allow a few tries
    topo.inNs(ns, ['ping', '-c', '3', '-i', '0.4', '-w', '3', ...(from ? ['-I', from] : []), addr], { allowFail: true }).then((o) => / [1-9]\d* received/.test(o));

  test('plan shows the changes without applying; --exit-code gives 3', async () => {
    const r = await cli(['plan', '--exit-code']);
    assert.equal(r.code, 3, r.err);
    assert.match(r.out, /\+ address 10\.60\.0\.1\/24 dev /);
    assert.match(r.out, /\+ route 203\.0\.113\.5\/32 dev /);
    assert.match(r.out, /\+ proxy-neighbour 203\.0\.113\.5 dev /);
    assert.match(r.out, /\+ nft-table bridge ipvisor/);
    assert.equal(await ping(up.ns, '203.0.113.5'), false, 'nothing applied yet');
  });

  test('apply: routed IP reachable from upstream, NAT to upstream works; second apply: no changes', async () => {
    const r = await cli(['apply', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.ok(JSON.parse(r.out).changes.length > 0);
    assert.equal(await ping(up.ns, '203.0.113.5'), true, 'routed IP reachable through proxy ARP + route');
    // upstream has no route to 10.60.0.0/24: a reply proves masquerading
    assert.equal(await ping(vm1.ns, '198.18.0.2', '10.60.0.10'), true, 'NAT to upstream');
    const again = await cli(['apply', '--json']);
    assert.deepEqual(JSON.parse(again.out).changes, []);
    const plan = await cli(['plan', '--exit-code']);
    assert.equal(plan.code, 0);
    assert.match(plan.out, /No changes/);
  });

  test('status lists this host\'s VIF with its effective locking mode and no drift', async () => {
    // a VM on another host whose VIF has the same interface name (vnet0 exists on every host)
    const st = await openStore(db, { create: true });
    const net = (await st.listNetworks())[0];
    const far = { ...vm('far'), host: 'another-host' };
    await st.insertVm(far);
    await st.insertVif(vif(far, net, { mac: '52:54:00:bb:00:99', ifname: vm1.vif }));
    await st.close();
    const r = await cli(['status', '--json']);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out).host;
    assert.equal(s.vifs.length, 1, 'only this host\'s VIFs');
    assert.equal(s.vifs[0].locking, 'locked');
    assert.deepEqual(s.vifs[0].allowed, ['10.60.0.10/32', '203.0.113.5/32']);
    assert.deepEqual(s.vifs[0].drift, []);
    const text = await cli(['status']);
    assert.match(text.out, /^VIF +IFNAME +LOCKING +ALLOWED +DRIFT\n/);
    assert.match(text.out, /host in sync/);
    assert.doesNotMatch(text.out, /[{}]/, 'no raw JSON in the text output (no XAPI pool connected)');
  });

  test('serve repairs nft flush ruleset, a deleted route and a deleted bridge address, and logs it', async () => {
    serveProc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'serve', '--interval', '2'], { env: process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    serveProc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await until('serve to start', async () => log.includes('serving:'));
    await topo.inHost(['nft', 'flush', 'ruleset']);
    await topo.inHost(['ip', 'route', 'del', '203.0.113.5/32']);
    await topo.inHost(['ip', 'addr', 'del', '10.60.0.1/24', 'dev', topo.bridge]);
    await until('tables and route back', async () => {
      const t = await topo.inHost(['nft', 'list', 'tables']);
      const r = await topo.inHost(['ip', 'route', 'show', '203.0.113.5']);
      const a = await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]);
      return t.includes('bridge ipvisor') && t.includes('inet ipvisor') && r.includes('proto 250') && a.includes('10.60.0.1/24');
    });
    assert.equal(await ping(up.ns, '203.0.113.5'), true);
    // additions by others: an accept above ipvisor's rules, an allowed address for the VIF
    await topo.inHost(['nft', 'insert', 'rule', 'bridge', 'ipvisor', 'prerouting', 'accept']);
    await topo.inHost(['nft', 'add', 'element', 'bridge', 'ipvisor', 'vif_ip4', `{ "${vm1.vif}" . 10.60.0.99 }`]);
    await until('the foreign rule and element removed', async () => {
      const pre = await topo.inHost(['nft', 'list', 'chain', 'bridge', 'ipvisor', 'prerouting']);
      const set = await topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'vif_ip4']);
      return !/^\s*accept\s*$/m.test(pre) && !set.includes('10.60.0.99') && set.includes('10.60.0.10');
    });
    // a store change through the CLI reaches the host without any nft event (the periodic verify)
    assert.equal((await cli(['vif', 'set', 'r:0', '--locking', 'disabled'])).code, 0);
    await until('the CLI change applied by serve', async () => (await topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'disabled_ifs'])).includes(vm1.vif));
    assert.equal((await cli(['vif', 'set', 'r:0', '--locking', 'network_default'])).code, 0);
    await until('the CLI change undone by serve', async () => !(await topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'disabled_ifs'])).includes(vm1.vif));
    const s = await openStore(db, { create: true });
    try {
      const events = await s.listEvents({ limit: 50 });
      assert.ok(events.some((e) => e.actor === 'serve' && e.action === 'host.repair'), 'a repair event was logged');
    } finally {
      await s.close();
    }
    const p = serveProc;
    await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')));
    assert.match(log, /repaired/);
  });

  test('teardown leaves the host as it was', async () => {
    assert.ok(serveProc?.exitCode !== null, 'serve stopped before teardown');
    // the user's own address in the gateway's subnet: a secondary of ipvisor's 10.60.0.1/24, which
    // the kernel deletes along with its primary unless promote_secondaries is on
    await topo.inHost(['ip', 'addr', 'add', '10.60.0.77/24', 'dev', topo.bridge]);
    const r = await cli(['teardown']);
    assert.equal(r.code, 0, r.err);
    assert.match(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]), /10\.60\.0\.77\/24/, 'the user\'s address stays');
    assert.equal((await topo.inHost(['sysctl', '-n', `net/ipv4/conf/${topo.bridge}/promote_secondaries`])).trim(), '0', 'promote_secondaries restored');
    assert.ok(!(await topo.inHost(['nft', 'list', 'tables'])).includes('ipvisor'));
    assert.equal((await topo.inHost(['ip', 'route', 'show', 'proto', '250'])).trim(), '');
    assert.equal((await topo.inHost(['ip', 'neigh', 'show', 'proxy'])).trim(), '');
    assert.ok(!(await topo.inHost(['ip', 'addr', 'show', 'dev', topo.bridge])).includes('10.60.0.1/24'));
    assert.equal((await topo.inHost(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '0', 'forwarding restored');
    assert.equal(await ping(up.ns, '203.0.113.5'), false);
  });

  test('a route and a proxy entry that are not ipvisor\'s are left alone, by apply and by teardown', async () => {
    await topo.inHost(['ip', 'route', 'add', '203.0.113.5/32', 'via', '198.18.0.2']);
    await topo.inHost(['ip', 'neigh', 'add', 'proxy', '203.0.113.5', 'dev', up.uplink]);
    try {
      const r = await cli(['apply']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /route 203\.0\.113\.5\/32 dev \S+: this host already has 203\.0\.113\.5\/32 via 198\.18\.0\.2 .*left alone/);
      assert.doesNotMatch(r.out, /\+ route 203\.0\.113\.5/);
      assert.match(await topo.inHost(['ip', 'route', 'show', '203.0.113.5']), /^203\.0\.113\.5 via 198\.18\.0\.2 dev \S+ \n?$/);
      assert.equal((await cli(['teardown'])).code, 0);
      assert.match(await topo.inHost(['ip', 'route', 'show', '203.0.113.5']), /^203\.0\.113\.5 via 198\.18\.0\.2 /, 'the user\'s route survives teardown');
      assert.match(await topo.inHost(['ip', 'neigh', 'show', 'proxy']), /203\.0\.113\.5 dev /, 'the user\'s proxy entry survives teardown');
    } finally {
      await topo.inHost(['ip', 'route', 'del', '203.0.113.5/32'], { allowFail: true });
      await topo.inHost(['ip', 'neigh', 'del', 'proxy', '203.0.113.5', 'dev', up.uplink], { allowFail: true });
    }
  });
});
