// The three exceptions to "ipvisor only touches what it created", with real packets and real
// iptables (iptables-nft) rules shaped like libvirt 9's: ACCEPTs at the top of FORWARD for routed
// addresses on a libvirt nat network, ipvisor's own default route next to the user's, and the
// management address narrowed to /32. Plus the Docker FORWARD-policy warning. teardown restores
// everything. Root only; namespaces removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliInEnv } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import type { Network } from '../../src/core/model/types.js';
import { network, seedRoutedVif } from '../compile/fixtures.js';
import { Topology, netnsSkipReason, sh, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = (await netnsSkipReason()) || skipUnless((await sh(['iptables', '--version'], { allowFail: true })).includes('nf_tables') ? null : 'iptables-nft is not installed');

const cli = cliInEnv;

describe('exceptions: libvirt FORWARD accepts, default route, narrowing', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-exc-'));
  const db = join(dir, 'db.sqlite');
  let vm1: VmNs;
  let up: { ns: string; uplink: string };
  let net: Network;
  const dummy = `${topo.prefix}dm`;
  let restoreEnv = () => {};
  const ipt = (args: string[]) => topo.inHost(['iptables', '-w', ...args]);

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    const br = topo.bridge;
    // what libvirt puts there: the gateway address and REJECTs for everything it did not allow
    await topo.inHost(['ip', 'addr', 'add', '192.168.100.1/24', 'dev', br]);
    vm1 = await topo.addVm('l1', '52:54:00:cc:00:01', { addresses: ['192.168.100.10/24', '198.51.100.7/32'], gateway4: '192.168.100.1' });
    up = await topo.addUpstream('198.18.0.1/24', ['198.18.0.2/24', '198.51.100.1/24']);
    await topo.inHost(['ip', 'route', 'add', 'default', 'via', '198.18.0.2']);
    await topo.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    for (const c of ['LIBVIRT_FWI', 'LIBVIRT_FWO']) await ipt(['-N', c]);
    await ipt(['-A', 'FORWARD', '-j', 'LIBVIRT_FWI']);
    await ipt(['-A', 'FORWARD', '-j', 'LIBVIRT_FWO']);
    await ipt(['-A', 'LIBVIRT_FWI', '-d', '192.168.100.0/24', '-o', br, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
    await ipt(['-A', 'LIBVIRT_FWI', '-o', br, '-j', 'REJECT']);
    await ipt(['-A', 'LIBVIRT_FWO', '-s', '192.168.100.0/24', '-i', br, '-j', 'ACCEPT']);
    await ipt(['-A', 'LIBVIRT_FWO', '-i', br, '-j', 'REJECT']);
    // stands in for XCP-ng's management bridge (no dummy module on every kernel: a veth pair)
    await topo.inHost(['ip', 'link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${topo.prefix}dp`]);
    await topo.inHost(['ip', 'addr', 'add', '10.99.0.5/24', 'dev', dummy]);
    await topo.inHost(['ip', 'link', 'set', dummy, 'up']);

    const store = await openStore(db, { create: true });
    net = network({ name: 'lvnat', driver: 'libvirt', bridge: br, mode: 'nat', uplink: up.uplink, subnets: [{ cidr: '192.168.100.0/24', family: 4, gateway: '192.168.100.1' }] });
    await seedRoutedVif(store, net, { vm: 'l', mac: vm1.mac, ifname: vm1.vif, address: '192.168.100.10', routed: '198.51.100.7' });
    await store.close();
  });

  after(async () => {
    try {
      await topo.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      restoreEnv();
    }
  });

  const ping = (ns: string, addr: string) =>
    topo.inNs(ns, ['ping', '-c', '3', '-i', '0.4', '-w', '3', addr], { allowFail: true }).then((o) => / [1-9]\d* received/.test(o));
  const forwardRules = async () => (await ipt(['-S', 'FORWARD'])).split('\n').filter((l) => l.startsWith('-A FORWARD'));

  test('without ipvisor, libvirt\'s REJECT stops the routed address', async () => {
    await topo.inHost(['ip', 'route', 'add', '198.51.100.7/32', 'dev', topo.bridge]);
    await topo.inHost(['ip', 'neigh', 'add', 'proxy', '198.51.100.7', 'dev', up.uplink]);
    try {
      assert.equal(await ping(up.ns, '198.51.100.7'), false);
    } finally {
      await topo.inHost(['ip', 'route', 'del', '198.51.100.7/32', 'dev', topo.bridge]);
      await topo.inHost(['ip', 'neigh', 'del', 'proxy', '198.51.100.7', 'dev', up.uplink]);
    }
  });

  test('apply inserts commented ACCEPTs at the top of FORWARD; the routed address is reachable', async () => {
    const r = await cli(['apply']);
    assert.equal(r.code, 0, r.err);
    const rules = await forwardRules();
    assert.match(rules[0], /-d 198\.51\.100\.7\/32 -o \S+ -m comment --comment ipvisor -j ACCEPT/);
    assert.match(rules[1], /-s 198\.51\.100\.7\/32 -i \S+ -m comment --comment ipvisor -j ACCEPT/);
    assert.equal(await ping(up.ns, '198.51.100.7'), true);
    const brAddrs = await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]);
    assert.equal(brAddrs.match(/inet /g)?.length, 1, 'no second address on libvirt\'s bridge');
    assert.ok(!(await topo.inHost(['nft', 'list', 'set', 'inet', 'ipvisor', 'nat4'])).includes('192.168.100'), 'never NAT on top of libvirt');
  });

  test('a rule inserted above ours (libvirtd restart) is noticed and ours go back on top', async () => {
    await ipt(['-N', 'LIBVIRT_FWX']);
    await ipt(['-I', 'FORWARD', '1', '-j', 'LIBVIRT_FWX']);
    const plan = await cli(['plan', '--exit-code']);
    assert.equal(plan.code, 3);
    assert.match(plan.out, /\+ iptables iptables FORWARD -d 198\.51\.100\.7\/32/);
    assert.equal((await cli(['apply'])).code, 0);
    const rules = await forwardRules();
    assert.match(rules[0], /--comment ipvisor/);
    assert.match(rules[1], /--comment ipvisor/);
    assert.equal(rules.filter((l) => l.includes('--comment ipvisor')).length, 2, 'no duplicates');
    assert.equal((await cli(['plan', '--exit-code'])).code, 0);
  });

  test('FORWARD policy DROP (Docker) is reported with the fix', async () => {
    await ipt(['-P', 'FORWARD', 'DROP']);
    try {
      const r = await cli(['plan']);
      assert.match(r.err, /FORWARD policy is DROP.*Fix: iptables -I FORWARD/);
      const j = await cli(['plan', '--json']);
      assert.ok(JSON.parse(j.out).warnings.some((w: string) => /FORWARD policy is DROP/.test(w)), 'warnings are in the JSON result too');
    } finally {
      await ipt(['-P', 'FORWARD', 'ACCEPT']);
    }
  });

  test('host gateway: ipvisor\'s default route next to the user\'s, once the network is up', async () => {
    assert.equal((await cli(['host', 'gateway', 'set', '--via', '2001:db8::1', '--when-up', 'lvnat'])).code, 2, 'same-family check');
    assert.equal((await cli(['host', 'gateway', 'set', '--via', '192.168.100.254', '--when-up', 'lvnat'])).code, 0);
    const r = await cli(['apply']);
    assert.match(r.out, /\+ route default via 192\.168\.100\.254 metric 1/);
    const routes = await topo.inHost(['ip', 'route', 'show', 'default']);
    assert.match(routes, /default via 198\.18\.0\.2 dev \S+\s*\n/, 'the user\'s default route stays');
    assert.match(routes, /default via 192\.168\.100\.254 dev \S+ proto 250 metric 1/);
  });

  test('narrowing the management address to /32 is recorded and applied', async () => {
    const store = await openStore(db, { create: true });
    await store.putDoc('host-setting', 'narrow', [{ dev: dummy, address: '10.99.0.5' }]);
    await store.close();
    const r = await cli(['apply']);
    assert.match(r.out, /~ narrow 10\.99\.0\.5\/24 dev \S+ \(to 10\.99\.0\.5\/32\)/);
    const addrs = await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', dummy]);
    assert.match(addrs, /10\.99\.0\.5\/32/);
    assert.doesNotMatch(addrs, /10\.99\.0\.5\/24/);
    assert.deepEqual(JSON.parse((await cli(['apply', '--json'])).out).changes, []);
  });

  test('teardown removes exactly ipvisor\'s and restores what it changed', async () => {
    const r = await cli(['teardown']);
    assert.equal(r.code, 0, r.err);
    const rules = await forwardRules();
    assert.ok(!rules.some((l) => l.includes('--comment ipvisor')));
    assert.ok(rules.includes('-A FORWARD -j LIBVIRT_FWI') && rules.includes('-A FORWARD -j LIBVIRT_FWX'), 'libvirt\'s rules stay');
    assert.match(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]), /192\.168\.100\.1\/24/, 'libvirt\'s address stays');
    const routes = await topo.inHost(['ip', 'route', 'show', 'default']);
    assert.doesNotMatch(routes, /proto 250/);
    assert.match(routes, /default via 198\.18\.0\.2/);
    assert.match(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', dummy]), /10\.99\.0\.5\/24/, 'narrowing undone');
    assert.equal((await topo.inHost(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '1', 'a sysctl that was already on stays on');
    assert.equal(await ping(up.ns, '198.51.100.7'), false);
  });
});
