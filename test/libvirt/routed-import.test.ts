// `import routed-ips` against a real SQLite store: a bad VM column changes nothing and names the
// line; lines without a VM become reservations in the network's routed pool; a re-run skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/core/store/open.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { importRoutedIps } from '../../src/agent/libvirt/routed-import.js';
import { IpvisorError } from '../../src/core/model/errors.js';

test('import routed-ips: a bad VM column names the line and writes nothing; good lines reserve or assign; re-run skips; a VM column added later binds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-routedimp-'));
  const store = await openStore(join(dir, 'db.sqlite'), { create: true });
  try {
    await createNetwork(store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    await createNetwork(store, { name: 'other', driver: 'libvirt', mode: 'nat', subnets: ['192.168.101.0/24'] }, 'test');
    await createVm(store, { name: 'web1' }, 'test');
    await addVif(store, { vm: 'web1', network: 'lvnat', mac: '52:54:00:00:00:01' }, 'test');
    await addVif(store, { vm: 'web1', network: 'other', mac: '52:54:00:00:00:02' }, 'test');
    const untouched = async () => {
      assert.deepEqual(await store.listAssignments({}), [], 'no address written');
      assert.deepEqual((await store.listPools()).map((p) => p.name), [], 'no pool written');
    };
    await assert.rejects(importRoutedIps(store, '198.51.100.10 lvnat\n# c\n198.51.100.11 lvnat ghost:0\n', 'routed-ips', 'test'), (e: unknown) => e instanceof IpvisorError && e.code === 'NOT_FOUND' && e.field === 'routed-ips:3' && /^routed-ips:3: .*ghost/.test(e.message));
    await untouched();
    await assert.rejects(importRoutedIps(store, '198.51.100.10 lvnat\n198.51.100.11 lvnat web1:1\n', 'routed-ips', 'test'), (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && e.field === 'routed-ips:2' && /not on network 'lvnat'/.test(e.message));
    await untouched();

    const text = '198.51.100.10 lvnat\n198.51.100.11 lvnat web1:0\n2001:db8:1::/64 lvnat\n';
    const res = await importRoutedIps(store, text, 'routed-ips', 'test');
    assert.deepEqual(res.imported.map((i) => i.action), ['reserved', 'assigned', 'reserved']);
    const pools = await store.listPools();
    assert.deepEqual(pools.map((p) => [p.name, p.purpose]).sort(), [['lvnat-routed', 'routed'], ['lvnat-routed6', 'routed']]);
    assert.deepEqual((await importRoutedIps(store, text, 'routed-ips', 'test')).imported.map((i) => i.action), ['exists', 'exists', 'exists']);

    // The VM column added later (the natural path from libvirt-nethook-helper's file): the
    // reservation becomes that VIF's, so its VIF may send from it once locked.
    const later = await importRoutedIps(store, '198.51.100.10 lvnat web1:0\n', 'routed-ips', 'test');
    assert.deepEqual(later.imported.map((i) => i.action), ['assigned']);
    const vif0 = (await store.listVifs((await store.findVmByName('web1'))!.uuid)).find((v) => v.device === 0)!;
    const bound = await store.listAssignments({ address: '198.51.100.10' });
    assert.deepEqual(bound.map((a) => a.vifUuid), [vif0.uuid]);
    // Bound to another VIF already: refused, naming the line, nothing changed.
    await createVm(store, { name: 'web2' }, 'test');
    await addVif(store, { vm: 'web2', network: 'lvnat', mac: '52:54:00:00:00:03' }, 'test');
    await assert.rejects(importRoutedIps(store, '198.51.100.12 lvnat\n198.51.100.10 lvnat web2:0\n', 'routed-ips', 'test'), (e: unknown) => e instanceof IpvisorError && e.field === 'routed-ips:2' && /already assigned to another VIF/.test(e.message));
    assert.deepEqual((await store.listAssignments({ address: '198.51.100.10' })).map((a) => a.vifUuid), [vif0.uuid]);
    assert.equal((await store.listAssignments({ address: '198.51.100.12' })).length, 0);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('import routed-ips: a bare VM means its first VIF on the network; every driver\'s networks; a warning per address bound to no VIF on a locked network', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-routedimp-'));
  const store = await openStore(join(dir, 'db.sqlite'), { create: true });
  try {
    await createNetwork(store, { name: 'br', driver: 'bridge', mode: 'routed', subnets: ['10.80.0.0/24'], defaultLocking: 'locked' }, 'test');
    await createNetwork(store, { name: 'xen', driver: 'xapi', mode: 'bridged', subnets: ['10.81.0.0/24'] }, 'test');
    await createNetwork(store, { name: 'open', driver: 'bridge', mode: 'routed', subnets: ['10.82.0.0/24'] }, 'test');
    await createVm(store, { name: 'web1' }, 'test');
    await addVif(store, { vm: 'web1', network: 'xen', mac: '52:54:00:00:01:01' }, 'test'); // device 0, elsewhere
    await addVif(store, { vm: 'web1', network: 'br', mac: '52:54:00:00:01:02' }, 'test'); // device 1
    await addVif(store, { vm: 'web1', network: 'br', mac: '52:54:00:00:01:03' }, 'test'); // device 2
    const res = await importRoutedIps(store, [
      '198.51.100.20 br web1', // bare VM: its first VIF on 'br' is device 1
      '198.51.100.21 xen web1', // an XAPI network: device 0
      '198.51.100.22 br', // bound to no VIF on a locked network: warned
      '198.51.100.23 open', // no VIF is locked there: no warning
    ].join('\n'), 'routed-ips', 'test');
    assert.deepEqual(res.imported.map((i) => [i.cidr, i.vif, i.action]), [
      ['198.51.100.20/32', 'web1:1', 'assigned'], ['198.51.100.21/32', 'web1:0', 'assigned'],
      ['198.51.100.22/32', null, 'reserved'], ['198.51.100.23/32', null, 'reserved'],
    ]);
    const vifs = await store.listVifs((await store.findVmByName('web1'))!.uuid);
    const device = async (addr: string) => {
      const owner = (await store.listAssignments({ address: addr }))[0]?.vifUuid;
      return vifs.find((v) => v.uuid === owner)?.device;
    };
    assert.equal(await device('198.51.100.20'), 1);
    assert.equal(await device('198.51.100.21'), 0);
    assert.equal(res.warnings.length, 1, res.warnings.join('\n'));
    assert.match(res.warnings[0], /^routed-ips:3: 198\.51\.100\.22\/32 .*bound to no VIF.*locked.*ipvisor ip allocate --vif VM:DEVICE --address 198\.51\.100\.22/);
    // a bare VM without a VIF on that network names the line
    await createVm(store, { name: 'novif' }, 'test');
    await assert.rejects(importRoutedIps(store, '198.51.100.30 br novif\n', 'routed-ips', 'test'), (e: unknown) => e instanceof IpvisorError && e.field === 'routed-ips:1' && /has no VIF on network 'br'/.test(e.message));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
