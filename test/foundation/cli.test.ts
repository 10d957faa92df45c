// The foundation contract, driven through the CLI in-process against a real SQLite store.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import { storeBackends } from '../support/backends.js';

for (const backend of storeBackends()) describe(`foundation CLI (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    assert.equal((await cli(db, 'network', 'create', 'lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1', '--subnet', '2001:db8:10::/64,gateway=fe80::1', '--dns', '192.0.2.53', '--mtu', '1450', '--route', '198.51.100.0/24,via=192.0.2.254', '--default-locking', 'unlocked')).code, 0);
    assert.equal((await cli(db, 'pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/24', '--exclude', '192.0.2.2', '--exclude', '192.0.2.8/30')).code, 0);
    assert.equal((await cli(db, 'pool', 'create', 'lan6', '--network', 'lan', '--cidr', '2001:db8:10::/64')).code, 0);
    assert.equal((await cli(db, 'tenant', 'create', 'acme')).code, 0);
    assert.equal((await cli(db, 'vm', 'add', 'web1', '--owner', 'acme', '--host', 'hv1')).code, 0);
    assert.equal((await cli(db, 'vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:AA:BB:01')).code, 0);
  });

  test('network show reports subnets, gateways and pool usage as decimal strings', async () => {
    const r = await cli(db, 'network', 'show', 'lan', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.name, 'lan');
    assert.match(r.json.uuid, /^[0-9a-f-]{36}$/);
    assert.deepEqual(r.json.subnets.map((s: any) => [s.cidr, s.gateway]), [['192.0.2.0/24', '192.0.2.1'], ['2001:db8:10::/64', 'fe80::1']]);
    assert.equal(r.json.mtu, 1450);
    const v4 = r.json.pools.find((p: any) => p.pool === 'lan4');
    // 256 - network - broadcast - gateway - .2 - .8/30 = 248
    assert.equal(v4.total, '248');
    const v6 = r.json.pools.find((p: any) => p.pool === 'lan6');
    assert.equal(typeof v6.total, 'string');
    assert.equal(v6.total, ((1n << 64n) - 1n).toString()); // minus the subnet-router anycast address
  });

  test('the network UUID is persistent and NAME arguments accept UUIDs', async () => {
    const a = (await cli(db, 'network', 'show', 'lan', '--json')).json.uuid;
    const b = await cli(db, 'network', 'show', a, '--json');
    assert.equal(b.json.uuid, a);
    await cli(db, 'network', 'set', 'lan', '--mtu', '1400');
    assert.equal((await cli(db, 'network', 'show', 'lan', '--json')).json.uuid, a);
    await cli(db, 'network', 'set', a, '--mtu', '1450');
  });

  test('allocation hands out the lowest free address, skipping network, gateway and exclusions', async () => {
    const r = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.address, '192.0.2.3');
    assert.equal(r.json.kind, 'primary');
    const r2 = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json');
    assert.equal(r2.json.address, '192.0.2.4');
    assert.equal(r2.json.kind, 'additional');
    const r6 = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '6', '--json');
    assert.equal(r6.json.address, '2001:db8:10::1');
    assert.equal(r6.json.kind, 'primary');
  });

  test('a dual-stack network needs --family; the error names the field', async () => {
    const r = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--json');
    assert.equal(r.code, 2);
    assert.equal(r.error?.field, 'family');
    assert.equal(r.error?.code, 'VALIDATION');
  });

  test('a specific address, and a taken one is exit 1', async () => {
    await cli(db, 'vm', 'add', 'db1');
    await cli(db, 'vif', 'add', 'db1', '--network', 'lan', '--mac', '52-54-00-aa-bb-02');
    const ok = await cli(db, 'ip', 'allocate', '--vif', 'db1:0', '--address', '192.0.2.100', '--json');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.json.address, '192.0.2.100');
    const taken = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.100', '--json');
    assert.equal(taken.code, 1);
    assert.equal(taken.error?.code, 'ADDRESS_TAKEN');
    assert.match(taken.error!.message, /db1:0/);
    const gw = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.1');
    assert.equal(gw.code, 2);
    assert.match(gw.stderr, /never handed out/);
    const excl = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.9');
    assert.equal(excl.code, 2);
    assert.match(excl.stderr, /excluded/);
  });

  test('request ids make allocation idempotent; a reused key with other arguments is exit 2', async () => {
    const a = await cli(db, 'ip', 'allocate', '--vif', 'db1:0', '--family', '6', '--request-id', 'k1', '--json');
    const b = await cli(db, 'ip', 'allocate', '--vif', 'db1:0', '--family', '6', '--request-id', 'k1', '--json');
    assert.equal(a.code, 0);
    assert.equal(b.code, 0);
    assert.equal(a.json.uuid, b.json.uuid);
    assert.equal(b.json.created, false);
    const c = await cli(db, 'ip', 'allocate', '--vif', 'db1:0', '--family', '4', '--request-id', 'k1', '--json');
    assert.equal(c.code, 2);
    assert.equal(c.error?.code, 'IDEMPOTENCY_MISMATCH');
  });

  test('reserve holds an address for no VIF; release frees it; list filters', async () => {
    const r = await cli(db, 'ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', 'printer', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.kind, 'reserved');
    assert.equal(r.json.vifUuid, null);
    const clash = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--address', '192.0.2.50');
    assert.equal(clash.code, 1);
    const show = await cli(db, 'ip', 'show', '192.0.2.50', '--json');
    assert.equal(show.json.note, 'printer');
    const byVm = await cli(db, 'ip', 'list', '--vm', 'web1', '--json');
    assert.deepEqual(byVm.json.map((a: any) => a.cidr).sort(), ['192.0.2.3', '192.0.2.4', '2001:db8:10::1']);
    const rel = await cli(db, 'ip', 'release', '192.0.2.50');
    assert.equal(rel.code, 0, rel.stderr);
    assert.match((await cli(db, 'ip', 'show', '192.0.2.50')).stdout, /free/);
  });

  test('releasing a primary promotes the next address of the family', async () => {
    assert.equal((await cli(db, 'ip', 'release', '192.0.2.3')).code, 0);
    const list = await cli(db, 'ip', 'list', '--vm', 'web1', '--json');
    assert.equal(list.json.find((a: any) => a.address === '192.0.2.4').kind, 'primary');
    // The lowest free address is the one just released.
    const again = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json');
    assert.equal(again.json.address, '192.0.2.3');
    assert.equal(again.json.kind, 'additional');
  });

  test('vif list shows the effective locking mode: unlocked default locks a VIF with addresses', async () => {
    await cli(db, 'vm', 'add', 'idle');
    await cli(db, 'vif', 'add', 'idle', '--network', 'lan', '--mac', '52:54:00:aa:bb:03');
    const list = await cli(db, 'vif', 'list', '--json');
    const by = Object.fromEntries(list.json.map((v: any) => [`${v.vm}:${v.device}`, v.effectiveLocking]));
    assert.equal(by['web1:0'], 'locked');
    assert.equal(by['idle:0'], 'unlocked');
    await cli(db, 'vif', 'set', 'idle:0', '--locking', 'disabled');
    assert.equal((await cli(db, 'vif', 'list', '--vm', 'idle', '--json')).json[0].effectiveLocking, 'disabled');
    await cli(db, 'network', 'set', 'lan', '--default-locking', 'locked');
    await cli(db, 'vif', 'set', 'idle:0', '--locking', 'network_default');
    assert.equal((await cli(db, 'vif', 'list', '--vm', 'idle', '--json')).json[0].effectiveLocking, 'locked');
  });

  test('device indexes default to the next free one; VM:DEVICE splits at the last colon', async () => {
    // ':' is refused in new VM names; a name that has one (recorded before that rule) still works
    assert.equal((await cli(db, 'vm', 'add', 'ns:a')).code, 2);
    const store = await openStore(db);
    const t = new Date().toISOString();
    await store.insertVm({ uuid: '6e6f8a52-3c1d-4c8e-9d7a-2f0e1b3c4d5e', name: 'ns:a', host: 'hv1', owner: null, extra: {}, createdAt: t, updatedAt: t });
    await store.close();
    const a = await cli(db, 'vif', 'add', 'ns:a', '--network', 'lan', '--mac', '52:54:00:aa:bb:10', '--json');
    const b = await cli(db, 'vif', 'add', 'ns:a', '--network', 'lan', '--mac', '52:54:00:aa:bb:11', '--json');
    assert.equal(a.json.device, 0);
    assert.equal(b.json.device, 1);
    const r = await cli(db, 'ip', 'allocate', '--vif', 'ns:a:1', '--family', '4', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.vif, 'ns:a:1');
  });

  test('deleting a VIF or a VM releases its addresses, audit-logged', async () => {
    const addr = (await cli(db, 'ip', 'list', '--vm', 'ns:a', '--json')).json[0].address;
    assert.equal((await cli(db, 'vif', 'delete', 'ns:a:1')).code, 0);
    assert.match((await cli(db, 'ip', 'show', addr)).stdout, /free/);
    assert.equal((await cli(db, 'vm', 'delete', 'db1')).code, 0);
    assert.match((await cli(db, 'ip', 'show', '192.0.2.100')).stdout, /free/);
    const ev = await cli(db, 'events', '--object', '192.0.2.100', '--json');
    assert.deepEqual(ev.json.map((e: any) => e.action), ['allocate', 'release']);
    assert.equal(ev.json[1].actor, 'tester');
    assert.equal(ev.json[1].before.address, '192.0.2.100');
  });

  test('routed prefixes: aligned, never overlapping, impossible lengths rejected', async () => {
    assert.equal((await cli(db, 'pool', 'create', 'public', '--network', 'lan', '--purpose', 'routed', '--cidr', '203.0.113.0/24')).code, 0);
    const single = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--json');
    assert.equal(single.json.address, '203.0.113.0');
    assert.equal(single.json.kind, 'routed');
    const p29 = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--prefix-length', '29', '--json');
    assert.equal(p29.code, 0, p29.stderr);
    assert.equal(p29.json.cidr, '203.0.113.8/29');
    const p28 = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--prefix-length', '28', '--json');
    assert.equal(p28.json.cidr, '203.0.113.16/28');
    const overlap = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--address', '203.0.113.0/28', '--json');
    assert.equal(overlap.code, 1);
    assert.equal(overlap.error?.code, 'ADDRESS_TAKEN');
    const tooBig = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--prefix-length', '20', '--json');
    assert.equal(tooBig.code, 2);
    assert.equal(tooBig.error?.field, 'prefix-length');
    const onVifPool = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'lan4', '--prefix-length', '30', '--json');
    assert.equal(onVifPool.code, 2);
    assert.equal((await cli(db, 'ip', 'release', '203.0.113.8/29')).code, 0);
    // the audit log names a prefix with its length (203.0.113.8 alone would read as one address)
    const ev = await cli(db, 'events', '--object', '203.0.113.8/29', '--json');
    assert.deepEqual(ev.json.map((e: any) => e.action), ['allocate', 'release']);
    const reuse = await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--pool', 'public', '--prefix-length', '30', '--json');
    assert.equal(reuse.json.cidr, '203.0.113.4/30');
  });

  test('an exhausted pool is exit 1', async () => {
    await cli(db, 'network', 'create', 'tiny', '--subnet', '10.9.9.0/29,gateway=10.9.9.1');
    await cli(db, 'pool', 'create', 'tiny4', '--network', 'tiny', '--range', '10.9.9.2-10.9.9.3');
    await cli(db, 'vm', 'add', 't');
    await cli(db, 'vif', 'add', 't', '--network', 'tiny', '--mac', '52:54:00:00:00:99');
    assert.equal((await cli(db, 'ip', 'allocate', '--vif', 't:0')).code, 0);
    assert.equal((await cli(db, 'ip', 'allocate', '--vif', 't:0')).code, 0);
    const r = await cli(db, 'ip', 'allocate', '--vif', 't:0', '--json');
    assert.equal(r.code, 1);
    assert.equal(r.error?.code, 'POOL_EXHAUSTED');
  });

  test('a pool hold keeps a released address out of circulation', async () => {
    await cli(db, 'network', 'create', 'dhcpnet', '--subnet', '10.7.0.0/24');
    await cli(db, 'pool', 'create', 'dhcp4', '--network', 'dhcpnet', '--cidr', '10.7.0.0/24', '--hold', '3600');
    await cli(db, 'vm', 'add', 'h');
    await cli(db, 'vif', 'add', 'h', '--network', 'dhcpnet', '--mac', '52:54:00:00:00:77');
    const a = await cli(db, 'ip', 'allocate', '--vif', 'h:0', '--json');
    assert.equal(a.json.address, '10.7.0.1');
    await cli(db, 'ip', 'release', '10.7.0.1');
    const b = await cli(db, 'ip', 'allocate', '--vif', 'h:0', '--json');
    assert.equal(b.json.address, '10.7.0.2');
    const c = await cli(db, 'ip', 'allocate', '--vif', 'h:0', '--address', '10.7.0.1', '--json');
    assert.equal(c.code, 1);
    assert.match(c.error!.message, /held until/);
    const pool = await cli(db, 'pool', 'show', 'dhcp4', '--json');
    assert.equal(pool.json.usage.held, '1');
    // Shortening the hold to 0 does not free what is already held; reclaim happens when it expires.
    assert.match((await cli(db, 'ip', 'show', '10.7.0.1')).stdout, /held until/);
  });

  test('pools and networks in use need --force, listing what is in use', async () => {
    const p = await cli(db, 'pool', 'delete', 'tiny4', '--json');
    assert.equal(p.code, 2);
    assert.equal(p.error?.code, 'IN_USE');
    assert.match(p.error!.message, /10\.9\.9\.2/);
    const n = await cli(db, 'network', 'delete', 'tiny');
    assert.equal(n.code, 2);
    assert.equal((await cli(db, 'network', 'delete', 'tiny', '--force')).code, 0);
    assert.equal((await cli(db, 'network', 'show', 'tiny')).code, 2);
    assert.equal((await cli(db, 'vif', 'list', '--vm', 't', '--json')).json.length, 0);
    const ev = await cli(db, 'events', '--object', 't', '--json');
    assert.ok(ev.json.some((e: any) => e.objectKind === 'vif' && e.action === 'delete' && /^t:\d+$/.test(e.objectName)), 'the deleted VIF is named VM:DEVICE in the audit log');
  });

  test('pool set adds ranges and exclusions; an exclusion over an assigned address is refused', async () => {
    await cli(db, 'network', 'create', 'grow', '--subnet', '10.8.0.0/16');
    await cli(db, 'pool', 'create', 'grow4', '--network', 'grow', '--range', '10.8.0.10-10.8.0.20');
    await cli(db, 'vm', 'add', 'g');
    await cli(db, 'vif', 'add', 'g', '--network', 'grow', '--mac', '52:54:00:00:00:55');
    await cli(db, 'ip', 'allocate', '--vif', 'g:0');
    const refused = await cli(db, 'pool', 'set', 'grow4', '--exclude', '10.8.0.10', '--json');
    assert.equal(refused.code, 2);
    const ok = await cli(db, 'pool', 'set', 'grow4', '--add-cidr', '10.8.1.0/24', '--exclude', '10.8.1.0/28', '--json');
    assert.equal(ok.code, 0, ok.stderr);
    const usage = (await cli(db, 'pool', 'show', 'grow4', '--json')).json.usage;
    assert.equal(usage.total, String(11 + 256 - 16));
    const inc = await cli(db, 'pool', 'set', 'grow4', '--include', '10.8.1.0/28', '--json');
    assert.equal(inc.code, 0, inc.stderr);
    assert.equal((await cli(db, 'pool', 'show', 'grow4', '--json')).json.usage.total, String(11 + 256));
  });

  test('host addresses are never handed out', async () => {
    await cli(db, 'network', 'create', 'hosted', '--subnet', '10.6.0.0/24');
    await cli(db, 'network', 'host-address', 'add', 'hosted', '10.6.0.1/24');
    await cli(db, 'pool', 'create', 'hosted4', '--network', 'hosted', '--cidr', '10.6.0.0/24');
    await cli(db, 'vm', 'add', 'hh');
    await cli(db, 'vif', 'add', 'hh', '--network', 'hosted', '--mac', '52:54:00:00:00:66');
    assert.equal((await cli(db, 'ip', 'allocate', '--vif', 'hh:0', '--json')).json.address, '10.6.0.2');
    assert.equal((await cli(db, 'network', 'host-address', 'add', 'hosted', '10.6.0.2/24')).code, 1);
    await cli(db, 'network', 'host-address', 'add', 'hosted', '10.6.0.3/24');
    assert.equal((await cli(db, 'ip', 'allocate', '--vif', 'hh:0', '--json')).json.address, '10.6.0.4');
    // bad host addresses: exit 2, the field named, nothing written
    for (const bad of ['10.6.0.0/24', '10.6.0.255/24', '2001:db8:66::/64', '10.6.0.9', '10.6.0.9/33', 'x/24']) {
      const r = await cli(db, 'network', 'host-address', 'add', 'hosted', bad, '--json');
      assert.equal(r.code, 2, bad);
      assert.equal(r.error?.field, 'address', bad);
    }
    assert.deepEqual((await cli(db, 'network', 'host-address', 'list', 'hosted', '--json')).json, ['10.6.0.1/24', '10.6.0.3/24']);
    const ll = await cli(db, 'host', 'gateway', 'set', '--via', 'fe80::1', '--json');
    assert.equal(ll.code, 2);
    assert.equal(ll.error?.field, 'via', 'a link-local next hop needs --when-up');
  });

  test('events show every change with actor and before/after, filtered by time and object', async () => {
    const all = await cli(db, 'events', '--json');
    const actions = new Set(all.json.map((e: any) => `${e.objectKind}:${e.action}`));
    for (const a of ['network:create', 'network:set', 'network:delete', 'pool:create', 'pool:set', 'pool:delete', 'vm:create', 'vm:delete', 'vif:create', 'vif:set', 'vif:delete', 'assignment:allocate', 'assignment:release', 'assignment:reserve']) {
      assert.ok(actions.has(a), `missing ${a}`);
    }
    const last2 = await cli(db, 'events', '--limit', '2', '--json');
    assert.deepEqual(last2.json.map((e: any) => e.id), all.json.slice(-2).map((e: any) => e.id));
    const badLimit = await cli(db, 'events', '--limit', 'abc', '--json');
    assert.equal(badLimit.code, 2);
    assert.equal(JSON.parse(badLimit.stderr).error.field, 'limit');
    const future = await cli(db, 'events', '--since', '2999-01-01', '--json');
    assert.deepEqual(future.json, []);
    const recent = await cli(db, 'events', '--since', '1h', '--object', 'lan', '--json');
    assert.ok(recent.json.length >= 3);
    const lanUuid = recent.json[0].objectUuid;
    assert.ok(recent.json.every((e: any) => e.objectUuid === lanUuid || (e.after ?? e.before).networkUuid === lanUuid));
    const set = recent.json.find((e: any) => e.action === 'set');
    assert.equal(set.before.mtu !== undefined, true);
  });

  test('vif bind: the interface name is validated; binding a name another VIF holds warns that the newer binding wins', async () => {
    await cli(db, 'vm', 'add', 'bd1');
    await cli(db, 'vm', 'add', 'bd2');
    await cli(db, 'vif', 'add', 'bd1', '--network', 'lan', '--mac', '52:54:00:00:0b:01');
    await cli(db, 'vif', 'add', 'bd2', '--network', 'lan', '--mac', '52:54:00:00:0b:02');
    const bad = await cli(db, 'vif', 'bind', 'bd1:0', '--ifname', 'bad/name', '--json');
    assert.equal(bad.code, 2);
    assert.equal(JSON.parse(bad.stderr).error.field, 'ifname');
    const listed = await cli(db, 'vif', 'list', '--vm', 'bd1', '--json');
    assert.equal(listed.json.length, 1);
    assert.equal(listed.json[0].ifname, null, 'nothing written');
    assert.equal((await cli(db, 'vif', 'bind', 'bd1:0', '--ifname', 'vnet42')).code, 0);
    const second = await cli(db, 'vif', 'bind', 'bd2:0', '--ifname', 'vnet42');
    assert.equal(second.code, 0);
    assert.match(second.stderr, /warning: vnet42 is also bound to bd1:0; only this newer binding is enforced/);
  });

  test("a VM's events include its VIFs and their addresses, also after they are gone", async () => {
    await cli(db, 'network', 'create', 'evnet', '--subnet', '10.5.0.0/24');
    await cli(db, 'pool', 'create', 'ev4', '--network', 'evnet', '--cidr', '10.5.0.0/24');
    await cli(db, 'vm', 'add', 'evvm');
    await cli(db, 'vif', 'add', 'evvm', '--network', 'evnet', '--mac', '52:54:00:00:00:e1');
    await cli(db, 'ip', 'allocate', '--vif', 'evvm:0');
    await cli(db, 'vm', 'add', 'bystander');
    await cli(db, 'vif', 'add', 'bystander', '--network', 'evnet', '--mac', '52:54:00:00:00:e2');
    await cli(db, 'ip', 'allocate', '--vif', 'bystander:0');
    await cli(db, 'vif', 'delete', 'evvm:0');
    const ev = await cli(db, 'events', '--object', 'evvm', '--json');
    assert.deepEqual(ev.json.map((e: any) => `${e.objectKind}:${e.action}`), ['vm:create', 'vif:create', 'assignment:allocate', 'assignment:release', 'vif:delete']);
    const byNet = await cli(db, 'events', '--object', 'evnet', '--json');
    assert.ok(byNet.json.some((e: any) => e.objectKind === 'pool'));
    assert.equal(byNet.json.filter((e: any) => e.action === 'allocate').length, 2);
  });
});

for (const backend of storeBackends()) describe(`IPv6 on router-advertisement networks (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  test('a VIF gets its EUI-64 SLAAC address, as a default guest configures it', async () => {
    const { openStore } = await import('../../src/core/store/open.js');
    const { createNetwork } = await import('../../src/core/service/networks.js');
    const s = await openStore(db, { create: true });
    await createNetwork(s, { name: 'ra', subnets: ['fd12:3456:789a:1::/64'], extra: { ipv6Slaac: true } }, 'tester');
    await s.close();
    await cli(db, 'pool', 'create', 'ra6', '--network', 'ra', '--cidr', 'fd12:3456:789a:1::/64');
    await cli(db, 'vm', 'add', 's');
    await cli(db, 'vif', 'add', 's', '--network', 'ra', '--mac', '52:54:00:12:34:56');
    const r = await cli(db, 'ip', 'allocate', '--vif', 's:0', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.address, 'fd12:3456:789a:1:5054:ff:fe12:3456');
    const again = await cli(db, 'ip', 'allocate', '--vif', 's:0', '--json');
    assert.equal(again.code, 1);
    assert.equal(again.error?.code, 'ADDRESS_TAKEN');
  });
});
