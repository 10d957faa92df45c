// The everyday-use defects found on a tour as a new user (issue 9), each through the CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { cli, tempDb } from '../support/cli.js';
import { storeBackends } from '../support/backends.js';

const ENTRY = new URL('../../src/cli/entry.ts', import.meta.url).pathname;

for (const backend of storeBackends()) describe(`CLI tour (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    assert.equal((await cli(db, 'tenant', 'create', 'acme')).code, 0);
    assert.equal((await cli(db, 'vm', 'add', 'web1', '--owner', 'acme')).code, 0);
    assert.equal((await cli(db, 'vm', 'add', 'web2', '--owner', 'acme')).code, 0);
  });

  test('a reader that closes the pipe early (`vm list | head -1`) is a normal end: exit 0, no stack trace', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, '--db', db, 'vm', 'list'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Close our end before the CLI writes: its first write meets a pipe without a reader (EPIPE).
    child.stdout.destroy();
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    assert.equal(err, '', 'nothing on stderr');
    assert.equal(code, 0);
  });

  test('an unknown command or option suggests the closest one, on the one error line', async () => {
    const r = await cli(db, 'vm', 'lsit');
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "ipvisor: unknown command 'lsit'; did you mean list?\n");
    assert.match((await cli(db, 'netwrk', 'list')).stderr, /did you mean network\?/);
    assert.match((await cli(db, 'plna')).stderr, /did you mean plan\?/);
    assert.match((await cli(db, 'vm', 'list', '--jsn')).stderr, /did you mean --json\?/);
    const j = await cli(db, 'vm', 'lsit', '--json');
    assert.equal(j.error?.code, 'USAGE');
    assert.match(j.error!.message, /did you mean list\?/);
  });

  test('subcommand help shows the global options (--json, --db)', async () => {
    for (const args of [['vm', 'list', '--help'], ['network', '--help'], ['ip', 'allocate', '--help']]) {
      const r = await cli(db, ...args);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Global Options:[\s\S]*--json[\s\S]*--db <path>/, args.join(' '));
    }
  });
});

for (const backend of storeBackends()) describe(`ip show --json: one shape, an enumerated state, separate until and reason (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());
  const FIELDS = ['address', 'cidr', 'family', 'kind', 'network', 'note', 'pool', 'reason', 'requestId', 'since', 'state', 'until', 'vif'];

  before(async () => {
    for (const args of [
      ['network', 'create', 'lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1', '--subnet', '2001:db8:10::/64'],
      ['network', 'host-address', 'add', 'lan', '192.0.2.2/24'],
      ['pool', 'create', 'lan4', '--network', 'lan', '--range', '192.0.2.1-192.0.2.200', '--exclude', '192.0.2.8/30', '--hold', '3600'],
      ['pool', 'create', 'pub', '--network', 'lan', '--purpose', 'routed', '--cidr', '203.0.113.0/24'],
      ['vm', 'add', 'web1'],
      ['vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:aa:bb:01'],
      ['ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.3', '--request-id', 'r1'],
      ['ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.4'],
      ['ip', 'release', '192.0.2.4'],
      ['ip', 'allocate', '--vif', 'web1:0', '--pool', 'pub', '--prefix-length', '29'],
      ['ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', 'printer'],
    ]) assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
  });

  const cases: Array<[string, string, Record<string, unknown>]> = [
    ['192.0.2.3', 'assigned', { vif: 'web1:0', kind: 'primary', cidr: '192.0.2.3', pool: 'lan4', network: 'lan', requestId: 'r1', until: null, reason: null }],
    ['203.0.113.5', 'assigned', { vif: 'web1:0', kind: 'routed', cidr: '203.0.113.0/29', pool: 'pub' }],
    ['192.0.2.50', 'reserved', { vif: null, kind: 'reserved', note: 'printer' }],
    ['192.0.2.4', 'held', { pool: 'lan4', vif: null, kind: null }],
    ['192.0.2.99', 'free', { pool: 'lan4', network: 'lan', until: null, reason: null }],
    ['192.0.2.9', 'excluded', { pool: 'lan4', until: null }],
    ['192.0.2.1', 'gateway', { network: 'lan' }],
    ['192.0.2.0', 'network', { network: 'lan' }],
    ['192.0.2.255', 'broadcast', { network: 'lan' }],
    ['192.0.2.2', 'host-address', { network: 'lan' }],
    ['192.0.2.250', 'outside', { network: 'lan', pool: null }],
    ['198.51.100.1', 'outside', { network: null, pool: null }],
    ['2001:db8:10::', 'network', { family: 6 }],
  ];
  for (const [address, state, fields] of cases) {
    test(`${address} is ${state}`, async () => {
      const r = await cli(db, 'ip', 'show', address, '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!Array.isArray(r.json), 'one object, not a list');
      assert.deepEqual(Object.keys(r.json).sort(), FIELDS, 'the same fields in every state');
      assert.equal(r.json.state, state);
      assert.equal(r.json.address, address);
      for (const [k, v] of Object.entries(fields)) assert.deepEqual(r.json[k], v, k);
      if (state === 'held') {
        assert.ok(!Number.isNaN(Date.parse(r.json.until)), 'until is a time of its own');
        assert.ok(!/until/.test(r.json.reason ?? ''), 'not folded into the reason');
      }
      if (['excluded', 'gateway', 'network', 'broadcast', 'host-address', 'outside'].includes(state)) assert.equal(typeof r.json.reason, 'string');
      assert.match((await cli(db, 'ip', 'show', address)).stdout, new RegExp(`^${address}: ${state}`));
    });
  }
});

for (const backend of storeBackends()) describe(`events show what changed (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  test('a set shows `field: before -> after`, not truncated JSON; --json carries the changes too', async () => {
    for (const args of [
      ['tenant', 'create', 'acme'],
      ['network', 'create', 'lan', '--subnet', '192.0.2.0/24', '--dns', '192.0.2.53', '--dns', '192.0.2.54', '--route', '198.51.100.0/24,via=192.0.2.254'],
      ['vm', 'add', 'web1', '--owner', 'acme'],
      ['vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:aa:bb:01', '--locking', 'locked'],
      ['vif', 'set', 'web1:0', '--locking', 'unlocked'],
      ['network', 'set', 'lan', '--mtu', '1400'],
    ]) assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
    const r = await cli(db, 'events');
    assert.equal(r.code, 0);
    const lines = r.stdout.split('\n');
    assert.ok(lines.some((l) => /set\s+vif\s+web1:0\s+locking: locked -> unlocked$/.test(l)), r.stdout);
    assert.ok(lines.some((l) => /set\s+network\s+lan\s+mtu: - -> 1400$/.test(l)), r.stdout);
    assert.ok(!r.stdout.includes('...'), 'nothing cut off');
    assert.ok(!r.stdout.includes('{"'), 'no raw JSON records');
    // a create lists what was set, whole (the route and both DNS servers)
    assert.match(r.stdout, /create\s+network\s+lan\s+.*dns=\[192\.0\.2\.53, 192\.0\.2\.54\].*198\.51\.100\.0\/24/);
    const j = await cli(db, 'events', '--object', 'web1', '--json');
    const set = j.json.find((e: any) => e.action === 'set' && e.objectKind === 'vif');
    assert.deepEqual(set.changes, [{ field: 'locking', before: 'locked', after: 'unlocked' }]);
  });
});

for (const backend of storeBackends()) describe(`lists and settings from the tour (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    for (const args of [
      ['network', 'create', 'lan', '--subnet', '192.0.2.0/24', '--subnet', '2001:db8:10::/64'],
      ['network', 'create', 'dmz', '--subnet', '198.51.100.0/24'],
      ['pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/28', '--hold', '3600'],
      ['tenant', 'create', 'acme'], ['tenant', 'create', 'beta'],
      ['vm', 'add', 'a1', '--owner', 'acme'], ['vm', 'add', 'b1', '--owner', 'beta'], ['vm', 'add', 'a2', '--owner', 'acme'],
      ['vif', 'add', 'a1', '--network', 'lan', '--mac', '52:54:00:00:01:01'],
      ['vif', 'add', 'a1', '--network', 'dmz', '--mac', '52:54:00:00:01:02'],
      ['vif', 'add', 'b1', '--network', 'lan', '--mac', '52:54:00:00:02:01'],
      ['vif', 'add', 'a2', '--network', 'dmz', '--mac', '52:54:00:00:03:01'],
    ]) assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
  });

  test('vif list --network and --owner filter, alone and together', async () => {
    const labels = async (...args: string[]) => (await cli(db, 'vif', 'list', ...args, '--json')).json.map((v: any) => `${v.vm}:${v.device}`).sort();
    assert.deepEqual(await labels('--network', 'lan'), ['a1:0', 'b1:0']);
    assert.deepEqual(await labels('--owner', 'acme'), ['a1:0', 'a1:1', 'a2:0']);
    assert.deepEqual(await labels('--network', 'dmz', '--owner', 'acme'), ['a1:1', 'a2:0']);
    assert.deepEqual(await labels('--owner', 'nobody'), []);
    assert.equal((await cli(db, 'vif', 'list', '--network', 'nope', '--json')).error?.code, 'NOT_FOUND');
  });

  test('pool list shows held addresses, so TOTAL = USED + HELD + FREE', async () => {
    for (const args of [['ip', 'allocate', '--vif', 'a1:0', '--family', '4'], ['ip', 'allocate', '--vif', 'b1:0', '--family', '4'], ['ip', 'release', '192.0.2.2']]) {
      assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
    }
    const r = await cli(db, 'pool', 'list');
    const [head, row] = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(head.slice(-4), ['TOTAL', 'USED', 'HELD', 'FREE']);
    const [total, used, held, free] = row.slice(-4).map(Number);
    assert.deepEqual([total, used, held, free], [15, 1, 1, 13]);
    assert.equal(total, used + held + free);
  });

  test('network host-address add refuses an address outside the network\'s subnets', async () => {
    for (const bad of ['10.9.9.9/24', '192.0.2.5/16', '2001:db8:99::5/64']) {
      const r = await cli(db, 'network', 'host-address', 'add', 'lan', bad, '--json');
      assert.equal(r.code, 2, bad);
      assert.equal(r.error?.field, 'address', bad);
      assert.match(r.error!.message, /outside the subnets of network 'lan'/, bad);
    }
    assert.equal((await cli(db, 'network', 'host-address', 'add', 'lan', '192.0.2.14/24')).code, 0);
    assert.equal((await cli(db, 'network', 'host-address', 'add', 'lan', '2001:db8:10::2/64')).code, 0);
    assert.deepEqual((await cli(db, 'network', 'host-address', 'list', 'lan', '--json')).json, ['192.0.2.14/24', '2001:db8:10::2/64']);
    // a network without subnets (a plain bridge, XAPI's management network) takes any address
    assert.equal((await cli(db, 'network', 'create', 'plain')).code, 0);
    assert.equal((await cli(db, 'network', 'host-address', 'add', 'plain', '10.30.0.254/24')).code, 0);
  });

  test('host gateway show prints the setting of a host, set or not', async () => {
    const none = await cli(db, 'host', 'gateway', 'show', '--host', 'hv1', '--json');
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(none.json, { host: 'hv1', gateway: null });
    assert.equal((await cli(db, 'host', 'gateway', 'set', '--host', 'hv1', '--via', '192.0.2.1', '--when-up', 'lan')).code, 0);
    const set = await cli(db, 'host', 'gateway', 'show', '--host', 'hv1', '--json');
    assert.equal(set.json.gateway.via, '192.0.2.1');
    assert.match((await cli(db, 'host', 'gateway', 'show', '--host', 'hv1')).stdout, /^hv1: default route via 192\.0\.2\.1/);
  });
});
