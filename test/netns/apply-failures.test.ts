// apply when the host is not as expected: a bridge that is administratively down gets its
// addresses and its routes wait (no failed batch), and a step that fails halfway undoes what the
// earlier steps of the same apply changed (nftables, the batch lines before it): all or nothing. Root only; namespaces
// removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliInEnv } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import { network, seedRoutedVif } from '../compile/fixtures.js';
import { Topology, netnsSkipReason, useHostEnv } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = await netnsSkipReason();

const cli = cliInEnv;

describe('apply on a host that is not as expected', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-fail-'));
  const db = join(dir, 'db.sqlite');
  let restoreEnv = () => {};

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    const vm1 = await topo.addVm('f1', '52:54:00:ee:00:01', { addresses: ['10.70.0.10/24'] });
    const store = await openStore(db, { create: true });
    const net = network({ name: 'fl', bridge: topo.bridge, mode: 'routed', subnets: [
      { cidr: '10.70.0.0/24', family: 4, gateway: '10.70.0.1' },
      { cidr: '2001:db8:70::/64', family: 6, gateway: 'fe80::1' },
    ] });
    await seedRoutedVif(store, net, { vm: 'f', mac: vm1.mac, ifname: vm1.vif, address: '10.70.0.10', routed: '203.0.113.70' });
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

  test('a bridge that is down gets its addresses; its routes wait until it is up', async () => {
    await topo.inHost(['ip', 'link', 'set', topo.bridge, 'down']);
    const r = await cli(['apply']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /bridge \S+ is down; its routes wait/);
    assert.match(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]), /10\.70\.0\.1\/24/);
    assert.equal((await topo.inHost(['ip', 'route', 'show', 'proto', '250'])).trim(), '');
    await topo.inHost(['ip', 'link', 'set', topo.bridge, 'up']);
    const again = await cli(['apply']);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /\+ route 203\.0\.113\.70\/32 dev /);
    assert.match(again.out, /\+ route 2001:db8:70::\/64 dev /);
    assert.equal((await cli(['teardown'])).code, 0);
    assert.doesNotMatch(await topo.inHost(['ip', 'addr', 'show', 'dev', topo.bridge]), /10\.70\.0\.1\/|fe80::1\//);
  });

  test('a failure in the middle undoes the earlier steps: the host is as it was (all or nothing)', async () => {
    const before = {
      tables: await topo.inHost(['nft', 'list', 'tables']),
      addrs: await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]),
      routes: await topo.inHost(['ip', 'route', 'show', 'proto', '250']),
    };
    assert.doesNotMatch(before.tables, /ipvisor/, 'the previous test tore down');
    // IPv6 off on the bridge: the link-local gateway cannot be added, after nftables was applied
    // and the IPv4 gateway was added in the same batch
    await topo.inHost(['sysctl', '-q', '-w', `net.ipv6.conf.${topo.bridge}.disable_ipv6=1`]);
    try {
      const r = await cli(['apply']);
      assert.equal(r.code, 1, r.out);
      assert.match(r.err, /^ipvisor: .*ip addr add fe80::1\/64 dev \S+: .+ \(the \d+ change\(s\) before it were applied\); this apply's earlier changes were undone: the host is as it was$/m, r.err);
      assert.equal(await topo.inHost(['nft', 'list', 'tables']), before.tables, 'the nft tables this apply created are gone again');
      assert.equal(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]), before.addrs, 'the IPv4 gateway added before the failing line is removed');
      assert.equal(await topo.inHost(['ip', 'route', 'show', 'proto', '250']), before.routes);
    } finally {
      await topo.inHost(['sysctl', '-q', '-w', `net.ipv6.conf.${topo.bridge}.disable_ipv6=0`]);
    }
    // nothing half-applied stays behind to confuse the next run: it applies everything
    const again = await cli(['apply']);
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /\+ nft-table bridge ipvisor/);
    assert.match(again.out, /\+ address 10\.70\.0\.1\/24 dev /);
    const t = await cli(['teardown']);
    assert.equal(t.code, 0, t.err);
    assert.doesNotMatch(await topo.inHost(['ip', '-4', 'addr', 'show', 'dev', topo.bridge]), /10\.70\.0\.1\//, 'teardown removed it');
  });
});
