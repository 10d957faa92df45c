// Network correctness with real packets (issue 9): VM-to-VM traffic on a NAT bridge with
// net.bridge.bridge-nf-call-iptables 0 and 1, a network behind a VM through its routed prefix,
// proxy ARP without the kernel's proxy_delay, status rows in order, and `serve` removing a foreign
// set, chain or rule inside ipvisor's tables. Root only; namespaces and serve removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliInEnv as cli } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import { assign, network, pool, vif, vm } from '../compile/fixtures.js';
import { netnsSkipReason, sh, Topology, useHostEnv, type VmNs } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { until } from '../support/until.js';

guardRootNamespace();

const skip = await netnsSkipReason();
const ENTRY = new URL('../../src/cli/entry.ts', import.meta.url).pathname;

describe('network correctness with real packets', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-correct-'));
  const db = join(dir, 'db.sqlite');
  let a: VmNs;
  let b: VmNs;
  let up: { ns: string; uplink: string };
  let behind = '';
  let serveProc: ChildProcess | undefined;
  let restoreEnv = () => {};
  let proxyDelayBefore = '';

  const ping = (ns: string, addr: string) =>
    topo.inNs(ns, ['ping', '-c', '2', '-i', '0.3', '-w', '3', addr], { allowFail: true }).then((o) => / [1-9]\d* received/.test(o));

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    // created in this order so that creation order differs from name order (status sorts)
    b = await topo.addVm('b', '52:54:00:cc:00:02', { addresses: ['10.70.0.11/24', '203.0.113.5/32'], gateway4: '10.70.0.1' });
    a = await topo.addVm('a', '52:54:00:cc:00:01', { addresses: ['10.70.0.10/24'], gateway4: '10.70.0.1' });
    up = await topo.addUpstream('198.18.0.1/24', ['198.18.0.2/24']);
    // a network behind VM a: 203.0.113.16/29, a routed to the host as a router
    behind = `${topo.prefix}bh`;
    await sh(['ip', 'netns', 'add', behind]);
    await topo.inNs(a.ns, ['ip', 'link', 'add', 'inner', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', behind]);
    await topo.inNs(a.ns, ['ip', 'addr', 'add', '203.0.113.17/29', 'dev', 'inner']);
    await topo.inNs(a.ns, ['ip', 'link', 'set', 'inner', 'up']);
    await topo.inNs(a.ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await topo.inNs(behind, ['ip', 'link', 'set', 'lo', 'up']);
    await topo.inNs(behind, ['ip', 'addr', 'add', '203.0.113.18/29', 'dev', 'eth0']);
    await topo.inNs(behind, ['ip', 'link', 'set', 'eth0', 'up']);
    await topo.inNs(behind, ['ip', 'route', 'add', 'default', 'via', '203.0.113.17']);
    proxyDelayBefore = (await topo.inHost(['sysctl', '-n', `net.ipv4.neigh.${up.uplink}.proxy_delay`])).trim();

    const store = await openStore(db, { create: true });
    const net = network({ name: 'natnet', bridge: topo.bridge, mode: 'nat', uplink: up.uplink, subnets: [{ cidr: '10.70.0.0/24', family: 4, gateway: '10.70.0.1' }] });
    const p4 = pool(net, { family: 4 });
    const pr = pool(net, { family: 4, purpose: 'routed' });
    await store.insertNetwork(net);
    await store.insertPool(p4);
    await store.insertPool(pr);
    const vb = vm('vm-b');
    const va = vm('vm-a');
    await store.insertVm(vb);
    await store.insertVm(va);
    const fb = vif(vb, net, { mac: b.mac, ifname: b.vif });
    const fa = vif(va, net, { mac: a.mac, ifname: a.vif });
    await store.insertVif(fb);
    await store.insertVif(fa);
    await store.insertAssignment(assign(fb, p4, '10.70.0.11'));
    await store.insertAssignment(assign(fb, pr, '203.0.113.5', { kind: 'routed' }));
    await store.insertAssignment(assign(fa, p4, '10.70.0.10'));
    await store.insertAssignment(assign(fa, pr, '203.0.113.16', { kind: 'routed', prefixLength: 29 }));
    await store.close();
    const r = await cli(['apply']);
    assert.equal(r.code, 0, r.err);
  });

  after(async () => {
    try {
      if (serveProc && serveProc.exitCode === null) {
        const p = serveProc;
        await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')));
      }
    } finally {
      if (behind) await sh(['ip', 'netns', 'del', behind], { allowFail: true });
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
      restoreEnv();
    }
  });

  test('VM to VM on a NAT bridge passes with net.bridge.bridge-nf-call-iptables 0 and 1', async () => {
    // per network namespace (kernel >= 5.3): set in the host namespace of this test only
    const key = 'net.bridge.bridge-nf-call-iptables';
    const before = (await topo.inHost(['sysctl', '-n', key])).trim();
    try {
      for (const value of ['0', '1']) {
        await topo.inHost(['sysctl', '-q', '-w', `${key}=${value}`]);
        assert.equal((await topo.inHost(['sysctl', '-n', key])).trim(), value);
        assert.equal(await ping(a.ns, '10.70.0.11'), true, `a -> b with ${key}=${value}`);
        assert.equal(await ping(b.ns, '10.70.0.10'), true, `b -> a with ${key}=${value}`);
      }
      // the NAT network still refuses new connections from outside (upstream routes to it here)
      await topo.inNs(up.ns, ['ip', 'route', 'replace', '10.70.0.0/24', 'via', '198.18.0.1']);
      assert.equal(await ping(up.ns, '10.70.0.11'), false, 'new inbound connections to a NAT network stay dropped');
    } finally {
      await topo.inHost(['sysctl', '-q', '-w', `${key}=${before}`]);
    }
  });

  test('a routed prefix is routed via the VIF\'s primary address: the network behind the VM answers', async () => {
    const route = await topo.inHost(['ip', 'route', 'show', '203.0.113.16/29']);
    assert.match(route, /via 10\.70\.0\.10 dev /);
    assert.equal(await ping(topo.host, '203.0.113.18'), true, 'the host reaches the namespace behind VM a');
    // and from upstream: routed in, forwarded by VM a, answered from inside the prefix
    await topo.inNs(up.ns, ['ip', 'route', 'replace', '203.0.113.0/24', 'via', '198.18.0.1']);
    assert.equal(await ping(up.ns, '203.0.113.18'), true, 'upstream reaches the namespace behind VM a');
    // a single routed address stays on-link
    const single = await topo.inHost(['ip', 'route', 'show', '203.0.113.5']);
    assert.match(single, /^203\.0\.113\.5 dev \S+ proto 250/m);
    assert.doesNotMatch(single, /via/);
    assert.equal(await ping(topo.host, '203.0.113.5'), true);
  });

  test('proxy ARP on the uplink answers without proxy_delay (0 while applied)', async () => {
    assert.notEqual(proxyDelayBefore, '0', 'the kernel default is a delay');
    assert.equal((await topo.inHost(['sysctl', '-n', `net.ipv4.neigh.${up.uplink}.proxy_delay`])).trim(), '0');
    // upstream asks for the routed single address on the link: the host answers for it
    await topo.inNs(up.ns, ['ip', 'route', 'del', '203.0.113.0/24'], { allowFail: true });
    await topo.inNs(up.ns, ['ip', 'route', 'add', '203.0.113.5/32', 'dev', 'eth0']);
    await topo.inNs(up.ns, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    assert.equal(await ping(up.ns, '203.0.113.5'), true, 'proxy ARP answered');
  });

  test('status lists the VIFs sorted by VM name and device', async () => {
    const r = await cli(['status', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out).host.vifs.map((v: { label: string }) => v.label), ['vm-a:0', 'vm-b:0']);
  });

  test('serve removes a foreign set, chain or rule added inside ipvisor\'s tables', async () => {
    serveProc = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'serve', '--interval', '2'], { env: process.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    serveProc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await until('serve to start', async () => log.includes('serving:'));
    const foreign: Array<[string, string[], (t: string) => boolean]> = [
      ['a set in inet ipvisor', ['nft', 'add', 'set', 'inet', 'ipvisor', 'foreignset', '{ type ipv4_addr; }'], (t) => t.includes('foreignset')],
      ['a chain in bridge ipvisor', ['nft', 'add', 'chain', 'bridge', 'ipvisor', 'foreignchain'], (t) => t.includes('foreignchain')],
      ['a rule in inet ipvisor forward', ['nft', 'add', 'rule', 'inet', 'ipvisor', 'forward', 'counter', 'comment', '"foreignrule"'], (t) => t.includes('foreignrule')],
    ];
    for (const [what, argv, present] of foreign) {
      await topo.inHost(argv);
      const table = () => topo.inHost(['nft', 'list', 'ruleset']);
      assert.ok(present(await table()), `${what} was added`);
      await until(`${what} removed by serve`, async () => !present(await table()));
    }
    // and enforcement is whole again
    assert.equal(await ping(a.ns, '10.70.0.11'), true);
  });

  test('plan/apply with an XAPI pool unreachable still print, apply and report the host changes; the pool error beside them, exit 1', async () => {
    if (serveProc && serveProc.exitCode === null) {
      const p = serveProc;
      await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')));
    }
    const pw = join(dir, 'xapi-pw');
    writeFileSync(pw, 'secret\n', { mode: 0o600 });
    // port 1 on loopback: nothing listens, the connection is refused at once
    let r = await cli(['xapi', 'connect', 'gone', '--url', 'http://127.0.0.1:1', '--insecure-http', '--user', 'root', '--password-file', pw, '--no-check']);
    assert.equal(r.code, 0, r.err);
    try {
      assert.equal((await cli(['vif', 'set', 'vm-a:0', '--locking', 'disabled'])).code, 0);
      const plan = await cli(['plan']);
      assert.equal(plan.code, 1, plan.err);
      assert.match(plan.out, new RegExp(`\\+ nft-element bridge disabled_ifs "${a.vif}"`), 'the host change is printed');
      assert.match(plan.err, /^ipvisor: xapi gone: .*ECONNREFUSED.*not checked$/m);
      assert.doesNotMatch(plan.out, /No changes/);
      const planJson = await cli(['plan', '--json']);
      assert.equal(planJson.code, 1);
      const pj = JSON.parse(planJson.out);
      assert.ok(pj.changes.some((c: { enforcer: string; target: string }) => c.enforcer === 'host' && c.target.includes(a.vif)));
      assert.deepEqual(pj.errors.map((e: { enforcer: string; code: string }) => [e.enforcer, e.code]), [['xapi', 'DRIVER']]);
      const apply = await cli(['apply', '--json']);
      assert.equal(apply.code, 1, apply.err);
      const aj = JSON.parse(apply.out);
      assert.ok(aj.changes.some((c: { enforcer: string; target: string }) => c.enforcer === 'host' && c.target.includes(a.vif)), 'the applied host change is reported');
      assert.equal(aj.errors[0].enforcer, 'xapi');
      assert.ok((await topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'disabled_ifs'])).includes(a.vif), 'and applied');
      assert.equal(await ping(a.ns, '10.70.0.11'), false, 'a disabled VIF passes nothing');
    } finally {
      r = await cli(['xapi', 'disconnect', 'gone']);
      assert.equal(r.code, 0, r.err);
      assert.equal((await cli(['vif', 'set', 'vm-a:0', '--locking', 'network_default'])).code, 0);
    }
    assert.equal((await cli(['apply'])).code, 0);
  });

  test('teardown restores proxy_delay', async () => {
    if (serveProc && serveProc.exitCode === null) {
      const p = serveProc;
      await new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGTERM')));
    }
    const r = await cli(['teardown']);
    assert.equal(r.code, 0, r.err);
    assert.equal((await topo.inHost(['sysctl', '-n', `net.ipv4.neigh.${up.uplink}.proxy_delay`])).trim(), proxyDelayBefore);
  });
});
