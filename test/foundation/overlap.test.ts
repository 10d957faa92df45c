// Address space is global: subnets of two networks never overlap, and routed pools lie outside
// every network's subnet and never cover a default route (issue 9, network correctness).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { storeBackends } from '../support/backends.js';

for (const backend of storeBackends()) describe(`overlapping address space is refused with OVERLAP (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    for (const args of [
      ['network', 'create', 'lan', '--subnet', '10.20.0.0/24,gateway=10.20.0.1', '--subnet', '2001:db8:20::/64'],
      ['pool', 'create', 'lan4', '--network', 'lan', '--cidr', '10.20.0.0/24'],
      ['pool', 'create', 'pub', '--network', 'lan', '--purpose', 'routed', '--cidr', '203.0.113.0/24'],
      ['network', 'create', 'other', '--subnet', '10.30.0.0/24'],
    ]) assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
  });

  test('a subnet inside another network\'s subnet is refused, naming that network; nothing is stored', async () => {
    const r = await cli(db, 'network', 'create', 'inner', '--subnet', '10.20.0.0/25', '--json');
    assert.equal(r.code, 2);
    assert.equal(r.error?.code, 'OVERLAP');
    assert.equal(r.error?.field, 'subnet');
    assert.match(r.error!.message, /10\.20\.0\.0\/25 overlaps subnet 10\.20\.0\.0\/24 of network 'lan'/);
    assert.equal((await cli(db, 'network', 'show', 'inner')).code, 2, 'not created');
    // covering it, IPv6, and through `network set` too
    assert.match((await cli(db, 'network', 'create', 'outer', '--subnet', '10.0.0.0/8')).stderr, /overlaps subnet 10\.20\.0\.0\/24 of network 'lan'/);
    assert.match((await cli(db, 'network', 'create', 'v6', '--subnet', '2001:db8:20::/48')).stderr, /overlaps subnet 2001:db8:20::\/64 of network 'lan'/);
    const s = await cli(db, 'network', 'set', 'other', '--subnet', '10.20.0.128/25', '--json');
    assert.equal(s.error?.code, 'OVERLAP');
    assert.deepEqual((await cli(db, 'network', 'show', 'other', '--json')).json.subnets.map((x: any) => x.cidr), ['10.30.0.0/24']);
    // a disjoint subnet is fine, and a network keeps its own subnets on set
    assert.equal((await cli(db, 'network', 'set', 'lan', '--mtu', '1400')).code, 0);
    assert.equal((await cli(db, 'network', 'create', 'next', '--subnet', '10.20.1.0/24')).code, 0);
  });

  test('a subnet over another network\'s routed pool is refused', async () => {
    const r = await cli(db, 'network', 'create', 'pubnet', '--subnet', '203.0.113.0/25', '--json');
    assert.equal(r.error?.code, 'OVERLAP');
    assert.match(r.error!.message, /routed pool 'pub' \(203\.0\.113\.0\/24\) of network 'lan'/);
  });

  test('a routed pool overlapping any network\'s subnet, or covering a default route, is refused', async () => {
    const r = await cli(db, 'pool', 'create', 'bad', '--network', 'other', '--purpose', 'routed', '--cidr', '10.20.0.64/26', '--json');
    assert.equal(r.code, 2);
    assert.equal(r.error?.code, 'OVERLAP');
    assert.equal(r.error?.field, 'cidr');
    assert.match(r.error!.message, /overlaps subnet 10\.20\.0\.0\/24 of network 'lan'/);
    assert.equal((await cli(db, 'pool', 'create', 'own', '--network', 'other', '--purpose', 'routed', '--range', '10.30.0.10-10.30.0.20', '--json')).error?.code, 'OVERLAP');
    for (const cidr of ['0.0.0.0/0', '::/0']) {
      const d = await cli(db, 'pool', 'create', 'everything', '--network', 'other', '--purpose', 'routed', '--cidr', cidr, '--json');
      assert.equal(d.error?.code, 'OVERLAP', cidr);
      assert.match(d.error!.message, /covers the default route/);
    }
    // through `pool set --add-cidr` as well
    const a = await cli(db, 'pool', 'set', 'pub', '--add-cidr', '10.30.0.0/28', '--json');
    assert.equal(a.error?.code, 'OVERLAP');
    assert.equal((await cli(db, 'pool', 'show', 'bad')).code, 2, 'not created');
  });

  test('two pools of different networks never hold the same address', async () => {
    const r = await cli(db, 'pool', 'create', 'pub2', '--network', 'other', '--purpose', 'routed', '--cidr', '203.0.113.128/25', '--json');
    assert.equal(r.error?.code, 'OVERLAP');
    assert.match(r.error!.message, /overlaps pool 'pub' \(203\.0\.113\.0\/24\) of network 'lan'/);
    assert.equal((await cli(db, 'pool', 'create', 'pub3', '--network', 'other', '--purpose', 'routed', '--cidr', '198.51.100.0/24')).code, 0);
  });
});
