// One validation for every entry point (issue 9), through the CLI: hostile input is exit 2, one
// line naming the field, nothing written; text output never carries a control character raw.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { storeBackends } from '../support/backends.js';
import { openStore } from '../../src/core/store/open.js';
import { MAX_NOTE_LENGTH } from '../../src/core/model/validate.js';

const OTHER_UUID = '0b0e7c7e-5b8f-4f39-9a43-7b0c8a0f0a01';

for (const backend of storeBackends()) describe(`entry validation through the CLI (${backend.name})`, { skip: backend.skip }, () => {
  let db: string;
  before(async () => {
    await backend.setup();
    db = await backend.newUrl();
  });
  after(() => backend.teardown());

  before(async () => {
    assert.equal((await cli(db, 'network', 'create', 'lan', '--bridge', 'br-lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1')).code, 0);
    assert.equal((await cli(db, 'pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/24')).code, 0);
    assert.equal((await cli(db, 'vm', 'add', 'web1', '--uuid', OTHER_UUID)).code, 0);
    assert.equal((await cli(db, 'vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:aa:bb:01')).code, 0);
  });

  /** exit 2, one line on stderr naming the field, and the store unchanged. */
  async function refused(field: string, ...args: string[]): Promise<void> {
    const store = await openStore(db);
    const before = JSON.stringify([await store.listVms(), await store.listNetworks(), await store.listPools(), await store.listVifs(), await store.listAssignments()]);
    await store.close();
    const r = await cli(db, ...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
    assert.ok(r.stderr.startsWith(`ipvisor: ${field}:`), `${args.join(' ')} -> ${r.stderr}`);
    const j = await cli(db, ...args, '--json');
    assert.equal(j.error?.field, field);
    const s2 = await openStore(db);
    const after = JSON.stringify([await s2.listVms(), await s2.listNetworks(), await s2.listPools(), await s2.listVifs(), await s2.listAssignments()]);
    await s2.close();
    assert.equal(after, before, 'nothing written');
  }

  test('names shaped like a UUID are refused for VMs, networks and pools', async () => {
    await refused('name', 'vm', 'add', OTHER_UUID);
    await refused('name', 'vm', 'add', OTHER_UUID.toUpperCase());
    await refused('name', 'network', 'create', '11111111-2222-4333-8444-555555555555', '--subnet', '198.51.100.0/24');
    await refused('name', 'pool', 'create', '11111111-2222-4333-8444-555555555555', '--network', 'lan', '--cidr', '192.0.2.0/28');
    await refused('name', 'network', 'set', 'lan', '--name', '11111111-2222-4333-8444-555555555555');
    await refused('name', 'pool', 'set', 'lan4', '--name', '11111111-2222-4333-8444-555555555555');
    // `vm delete <uuid>` still means the VM with that UUID
    assert.equal((await cli(db, 'vm', 'show', OTHER_UUID, '--json')).json.name, 'web1');
  });

  test("':' is refused in new VM names; VIF labels still split at the last ':'", async () => {
    await refused('name', 'vm', 'add', 'db:1');
    assert.equal((await cli(db, 'vif', 'list', '--vm', 'web1', '--json')).code, 0);
    assert.equal((await cli(db, 'vif', 'set', 'web1:0', '--locking', 'locked')).code, 0);
  });

  test("interface names follow the kernel's rules, ':' included", async () => {
    await refused('ifname', 'vif', 'bind', 'web1:0', '--ifname', 'eth0:1');
    await refused('ifname', 'vif', 'bind', 'web1:0', '--ifname', 'vnet"1');
    await refused('ifname', 'vif', 'bind', 'web1:0', '--ifname', 'a'.repeat(16));
    await refused('bridge', 'network', 'create', 'lan2', '--bridge', 'br:0', '--subnet', '198.51.100.0/24');
    await refused('bridge', 'network', 'create', 'lan2', '--bridge', 'br 0', '--subnet', '198.51.100.0/24');
    await refused('uplink', 'network', 'set', 'lan', '--uplink', 'eth0:1');
    assert.equal((await cli(db, 'vif', 'bind', 'web1:0', '--ifname', 'vnet3')).code, 0);
  });

  test('notes are bounded by one limit, for allocate and reserve alike', async () => {
    const long = 'n'.repeat(MAX_NOTE_LENGTH + 1);
    await refused('note', 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--note', long);
    await refused('note', 'ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', long);
    await refused('note', 'ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', 'evil\u001b[2J');
    const ok = await cli(db, 'ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', 'n'.repeat(MAX_NOTE_LENGTH));
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('text output escapes control characters; JSON carries them escaped too', async () => {
    // a name from an older store (or anything that got in before validation): shown, never run
    const store = await openStore(db);
    const vm = (await store.findVmByName('web1'))!;
    await store.updateVm({ ...vm, name: 'web1\u001b]0;pwned\u0007\u009b2J' });
    await store.close();
    try {
      const list = await cli(db, 'vm', 'list');
      assert.equal(list.code, 0, list.stderr);
      assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(list.stdout), JSON.stringify(list.stdout));
      assert.match(list.stdout, /web1\\x1b\]0;pwned\\x07\\x9b2J/);
      const json = await cli(db, 'vm', 'list', '--json');
      assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(json.stdout));
      assert.equal(json.json[0].name, 'web1\u001b]0;pwned\u0007\u009b2J', 'JSON escapes round-trip');
      // an error quoting hostile input stays one escaped line
      const err = await cli(db, 'vm', 'show', 'x\u001b[2J\ny');
      assert.equal(err.code, 2);
      assert.equal(err.stderr.split('\n').filter(Boolean).length, 1, err.stderr);
      assert.ok(!err.stderr.includes('\u001b'));
    } finally {
      const s = await openStore(db);
      const v = (await s.getVm(OTHER_UUID))!;
      await s.updateVm({ ...v, name: 'web1' });
      await s.close();
    }
  });
});
