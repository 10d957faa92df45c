// Every bad input: exit 2, a one-line error naming the field, and nothing written.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { storeBackends } from '../support/backends.js';

for (const backend of storeBackends()) describe(`bad input is rejected with the field named and nothing written (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    await cli(db, 'network', 'create', 'lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1', '--subnet', '2001:db8::/64');
    await cli(db, 'pool', 'create', 'lan4', '--network', 'lan', '--range', '192.0.2.10-192.0.2.99');
    await cli(db, 'network', 'create', 'other', '--subnet', '198.51.100.0/24');
    await cli(db, 'vm', 'add', 'vm1');
    await cli(db, 'vif', 'add', 'vm1', '--network', 'lan', '--mac', '52:54:00:00:00:01');
  });

  const cases: Array<{ name: string; args: string[]; field: string; code?: string }> = [
    { name: 'invalid CIDR', args: ['network', 'create', 'n1', '--subnet', '10.0.0.0/33'], field: 'subnet' },
    { name: 'garbage CIDR', args: ['network', 'create', 'n1', '--subnet', 'banana'], field: 'subnet' },
    { name: 'non-canonical subnet', args: ['network', 'create', 'n1', '--subnet', '10.0.0.1/24'], field: 'subnet' },
    { name: 'gateway of the wrong family', args: ['network', 'create', 'n1', '--subnet', '10.0.0.0/24,gateway=2001:db8::1'], field: 'subnet.gateway' },
    { name: 'gateway outside its subnet', args: ['network', 'create', 'n1', '--subnet', '10.0.0.0/24,gateway=10.0.1.1'], field: 'subnet.gateway' },
    { name: 'gateway is the broadcast address', args: ['network', 'create', 'n1', '--subnet', '10.0.0.0/24,gateway=10.0.0.255'], field: 'subnet.gateway' },
    { name: 'overlapping subnets', args: ['network', 'create', 'n1', '--subnet', '10.0.0.0/16', '--subnet', '10.0.1.0/24'], field: 'subnet', code: 'OVERLAP' },
    { name: 'duplicate network name', args: ['network', 'create', 'lan'], field: 'name', code: 'ALREADY_EXISTS' },
    { name: 'unknown mode', args: ['network', 'create', 'n1', '--mode', 'weird'], field: 'mode' },
    { name: 'unknown locking mode', args: ['network', 'create', 'n1', '--default-locking', 'sometimes'], field: 'default-locking' },
    { name: 'MTU out of range', args: ['network', 'create', 'n1', '--mtu', '10'], field: 'mtu' },
    { name: 'bad DNS server', args: ['network', 'create', 'n1', '--dns', '1.2.3'], field: 'dns' },
    { name: 'route without next hop', args: ['network', 'create', 'n1', '--route', '10.1.0.0/16'], field: 'route' },
    { name: 'bad bridge name', args: ['network', 'create', 'n1', '--bridge', 'a-very-long-bridge-name'], field: 'bridge' },
    { name: 'vif pool outside the subnets', args: ['pool', 'create', 'p1', '--network', 'lan', '--cidr', '10.0.0.0/24'], field: 'cidr' },
    { name: 'pool overlapping another pool (a range)', args: ['pool', 'create', 'p1', '--network', 'lan', '--range', '192.0.2.50-192.0.2.150'], field: 'range', code: 'OVERLAP' },
    { name: 'pool overlapping another pool (a CIDR)', args: ['pool', 'create', 'p1', '--network', 'lan', '--cidr', '192.0.2.64/26'], field: 'cidr', code: 'OVERLAP' },
    { name: 'pool mixing families', args: ['pool', 'create', 'p1', '--network', 'lan', '--cidr', '192.0.2.128/26', '--cidr', '2001:db8::/80'], field: 'cidr' },
    { name: 'range backwards', args: ['pool', 'create', 'p1', '--network', 'lan', '--range', '192.0.2.200-192.0.2.150'], field: 'range' },
    { name: 'pool on an unknown network', args: ['pool', 'create', 'p1', '--network', 'nope', '--cidr', '192.0.2.128/26'], field: 'network', code: 'NOT_FOUND' },
    { name: 'pool without ranges', args: ['pool', 'create', 'p1', '--network', 'lan'], field: 'cidr' },
    { name: 'unknown purpose', args: ['pool', 'create', 'p1', '--network', 'lan', '--cidr', '192.0.2.128/26', '--purpose', 'x'], field: 'purpose' },
    { name: 'malformed MAC', args: ['vif', 'add', 'vm1', '--network', 'lan', '--mac', '52:54:00:00:01'], field: 'mac' },
    { name: 'multicast MAC', args: ['vif', 'add', 'vm1', '--network', 'lan', '--mac', '01:00:5e:00:00:01'], field: 'mac' },
    { name: 'duplicate MAC on a network', args: ['vif', 'add', 'vm1', '--network', 'lan', '--mac', '52:54:00:00:00:01'], field: 'mac', code: 'ALREADY_EXISTS' },
    { name: 'unknown VM', args: ['vif', 'add', 'ghost', '--network', 'lan', '--mac', '52:54:00:00:00:09'], field: 'vm', code: 'NOT_FOUND' },
    { name: 'bad VIF reference', args: ['ip', 'allocate', '--vif', 'vm1'], field: 'vif' },
    { name: 'unknown device', args: ['ip', 'allocate', '--vif', 'vm1:7'], field: 'vif', code: 'NOT_FOUND' },
    { name: 'bad family', args: ['ip', 'allocate', '--vif', 'vm1:0', '--family', '5'], field: 'family' },
    { name: 'pool of another network', args: ['ip', 'allocate', '--vif', 'vm1:0', '--pool', 'otherpool'], field: 'pool' },
    { name: 'address outside every pool', args: ['ip', 'allocate', '--vif', 'vm1:0', '--address', '192.0.2.200'], field: 'address' },
    { name: 'prefix length impossible for the pool', args: ['ip', 'allocate', '--vif', 'vm1:0', '--pool', 'lan4', '--prefix-length', '33'], field: 'prefix-length' },
    { name: 'no v6 pool', args: ['ip', 'allocate', '--vif', 'vm1:0', '--family', '6'], field: 'pool' },
    { name: 'bad VM UUID', args: ['vm', 'add', 'x', '--uuid', 'not-a-uuid'], field: 'uuid' },
    { name: 'release of an unknown address', args: ['ip', 'release', '192.0.2.77'], field: 'address', code: 'NOT_FOUND' },
    { name: 'bad --since', args: ['events', '--since', 'yesterday-ish'], field: 'since' },
    { name: 'unknown option', args: ['network', 'create', 'n1', '--colour', 'blue'], field: '', code: 'USAGE' },
    { name: 'missing argument', args: ['pool', 'create'], field: '', code: 'USAGE' },
  ];

  before(async () => {
    await cli(db, 'pool', 'create', 'otherpool', '--network', 'other', '--cidr', '198.51.100.0/25');
  });

  for (const c of cases) {
    test(c.name, async () => {
      const beforeEvents = (await cli(db, 'events', '--json')).json.length;
      const r = await cli(db, ...c.args, '--json');
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      assert.ok(r.error, `structured error on stderr: ${r.stderr}`);
      assert.equal(r.error!.code, c.code ?? 'VALIDATION');
      if (c.field) assert.equal(r.error!.field, c.field);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      const plain = await cli(db, ...c.args);
      assert.equal(plain.stderr.trim().split('\n').length, 1, 'one line in text mode');
      assert.match(plain.stderr, /^ipvisor: /);
      assert.equal((await cli(db, 'events', '--json')).json.length, beforeEvents, 'nothing written');
    });
  }

  test('a second network on the same subnet is refused (OVERLAP), so a bare address names one assignment', async () => {
    const r = await cli(db, 'network', 'create', 'twin', '--subnet', '192.0.2.0/24', '--json');
    assert.equal(r.code, 2);
    assert.equal(r.error?.code, 'OVERLAP');
    assert.match(r.error!.message, /network 'lan'/);
  });
});
