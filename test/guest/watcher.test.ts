// serve's guest auto-push: an opted-in VM's changed assignments reach the running stand-in guest
// (real qemu-ga) without anyone running `guest push`; VMs not opted in are left alone.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { autoPushEnabled, createGuestPushWatcher, GUEST_PUSH_DOC, requestGuestPush, type GuestPushRecord } from '../../src/agent/guest/watcher.js';
import { hotplugDomain } from '../../src/agent/libvirt/watcher.js';
import { vifPlugs } from '../../src/server/xapi/watcher.js';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import type { Network, Vm } from '../../src/core/model/types.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { cli, tempDb } from '../support/cli.js';
import { standinUnavailable, startStandinGuest, type StandinGuest } from './standin.js';
import { guardRootNamespace, privateRunDir } from '../support/root-guard.js';

guardRootNamespace();
// guest pushes take a per-VM lock in the run dir: this file's, not the machine's /run/ipvisor
privateRunDir();

const MAC = '52:54:00:aa:bb:02';

describe('guest auto-push watcher', { skip: standinUnavailable() ?? false }, () => {
  const { db, cleanup } = tempDb();
  let g: StandinGuest;
  let store: Store;
  const abort = new AbortController();
  const watcher = createGuestPushWatcher({ intervalMs: 100, retryMs: 200, guardSeconds: 30 });
  const logs: string[] = [];

  const ok = async (...a: string[]) => {
    const r = await cli(db, ...a);
    assert.equal(r.code, 0, `${a.join(' ')}: ${r.stderr}`);
    return r;
  };
  const addrs = async () => {
    const [a] = JSON.parse(await g.ip('-j', 'addr', 'show', 'dev', 'eth0')) as any[];
    return a.addr_info.filter((i: any) => i.scope === 'global').map((i: any) => `${i.local}/${i.prefixlen}`).sort();
  };
  const until = async (what: string, fn: () => Promise<boolean>) => {
    const deadline = Date.now() + 15_000;
    while (!(await fn())) {
      if (Date.now() > deadline) assert.fail(`${what} did not happen; log:\n${logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    g = await startStandinGuest(MAC);
    await g.ip('addr', 'add', '198.51.100.10/24', 'dev', 'eth0');
    await ok('network', 'create', 'lan', '--subnet', '203.0.113.0/24,gateway=203.0.113.1', '--mtu', '1450');
    await ok('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '203.0.113.0/24');
    await ok('vm', 'add', 'web1');
    await ok('vif', 'add', 'web1', '--network', 'lan', '--mac', MAC);
    store = await openStore(db, { create: true });
    await watcher.start({ store, actor: 'serve', requestReconcile: () => undefined, log: (m) => logs.push(m), signal: abort.signal });
  });
  after(async () => {
    abort.abort();
    await watcher.stop();
    await store?.close();
    await g?.stop();
    cleanup();
  });

  test('not opted in: nothing is pushed', async () => {
    await ok('ip', 'allocate', '--vif', 'web1:0', '--address', '203.0.113.5');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await addrs(), ['198.51.100.10/24']);
    assert.equal(await store.getDoc(GUEST_PUSH_DOC, (await store.findVmByName('web1'))!.uuid), undefined);
  });

  test('opted in per VM: the current addresses are pushed, then every change', async () => {
    await ok('guest', 'auto-push', 'on', '--vm', 'web1', '--socket', g.socket);
    await until('first auto-push', async () => JSON.stringify(await addrs()) === JSON.stringify(['203.0.113.5/24']));
    await ok('ip', 'allocate', '--vif', 'web1:0', '--address', '203.0.113.6');
    await until('second auto-push', async () => (await addrs()).includes('203.0.113.6/24'));
    const rec = (await store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, (await store.findVmByName('web1'))!.uuid))!.value;
    assert.equal(rec.ok, true);
    assert.match(rec.via ?? '', /socket/);
  });

  test('opted out again: changes stay in the store', async () => {
    await ok('guest', 'auto-push', 'off', '--vm', 'web1');
    await ok('ip', 'release', '203.0.113.6');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok((await addrs()).includes('203.0.113.6/24'));
  });
});

test('autoPushEnabled: opt-in per network reaches every VM on it; the VM own setting wins either way', () => {
  const t = '2026-01-01T00:00:00.000Z';
  const net = (uuid: string, extra: Record<string, unknown>) => ({ uuid, extra }) as unknown as Network;
  const vm = (uuid: string, extra: Record<string, unknown> = {}) => ({ uuid, name: uuid, host: 'hv1', owner: null, extra, createdAt: t, updatedAt: t }) as Vm;
  const snapshot = {
    networks: [net('lan', { guestAutoPush: true }), net('dmz', {})],
    vifs: [{ vmUuid: 'a', networkUuid: 'dmz' }, { vmUuid: 'a', networkUuid: 'lan' }, { vmUuid: 'b', networkUuid: 'dmz' }],
  } as unknown as Snapshot;
  assert.equal(autoPushEnabled(snapshot, vm('a')), true); // one of its networks opted in
  assert.equal(autoPushEnabled(snapshot, vm('b')), false);
  assert.equal(autoPushEnabled(snapshot, vm('a', { guestAutoPush: false })), false);
  assert.equal(autoPushEnabled(snapshot, vm('b', { guestAutoPush: true })), true);
});

test('guest auto-push on --network records the opt-in on the network (audited); --socket goes with --vm only', async () => {
  const { db, cleanup } = tempDb();
  try {
    assert.equal((await cli(db, 'network', 'create', 'lan', '--subnet', '203.0.113.0/24')).code, 0);
    const r = await cli(db, 'guest', 'auto-push', 'on', '--network', 'lan', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, { target: 'network lan', autoPush: true, lastPush: null });
    const store = await openStore(db, { create: true });
    try {
      assert.equal((await store.findNetworkByName('lan'))!.extra.guestAutoPush, true);
    } finally {
      await store.close();
    }
    const bad = await cli(db, 'guest', 'auto-push', 'on', '--network', 'lan', '--socket', '/x');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /socket: --socket goes with --vm/);
  } finally {
    cleanup();
  }
});

describe('NIC hot-plug through serve: the hypervisor event makes the watcher push now', { skip: standinUnavailable() ?? false }, () => {
  const { db, cleanup } = tempDb();
  const MAC0 = '52:54:00:aa:cc:01';
  const MAC1 = '52:54:00:aa:cc:02';
  let g: StandinGuest;
  let store: Store;
  const abort = new AbortController();
  // retries a failed push only after 10 minutes: whatever happens sooner is the hot-plug path
  const watcher = createGuestPushWatcher({ intervalMs: 100, retryMs: 600_000, guardSeconds: 30 });
  const logs: string[] = [];
  const ok = async (...a: string[]) => {
    const r = await cli(db, ...a);
    assert.equal(r.code, 0, `${a.join(' ')}: ${r.stderr}`);
  };
  const addrsOf = async (dev: string) => {
    const [a] = JSON.parse(await g.ip('-j', 'addr', 'show', 'dev', dev)) as any[];
    return a.addr_info.filter((i: any) => i.scope === 'global').map((i: any) => `${i.local}/${i.prefixlen}`);
  };
  const until = async (what: string, fn: () => Promise<boolean>) => {
    const deadline = Date.now() + 15_000;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > deadline) assert.fail(`${what} did not happen; log:\n${logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    g = await startStandinGuest(MAC0);
    await ok('network', 'create', 'lan', '--subnet', '203.0.113.0/24,gateway=203.0.113.1');
    await ok('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '203.0.113.0/24');
    await ok('vm', 'add', 'web2');
    await ok('vif', 'add', 'web2', '--network', 'lan', '--mac', MAC0);
    await ok('ip', 'allocate', '--vif', 'web2:0', '--address', '203.0.113.10');
    store = await openStore(db);
    await watcher.start({ store, actor: 'serve', requestReconcile: () => undefined, log: (m) => logs.push(m), signal: abort.signal });
    await ok('guest', 'auto-push', 'on', '--vm', 'web2', '--socket', g.socket);
    await until('first push', async () => (await addrsOf('eth0')).includes('203.0.113.10/24'));
  });
  after(async () => {
    abort.abort();
    await watcher.stop();
    await store?.close();
    await g?.stop();
    cleanup();
  });

  test('hot-add: the VIF is in the store before the guest has the NIC; the device-added event gets it configured', async () => {
    await ok('vif', 'add', 'web2', '--network', 'lan', '--mac', MAC1);
    await ok('ip', 'allocate', '--vif', 'web2:1', '--address', '203.0.113.11');
    const vm = (await store.findVmByName('web2'))!;
    await until('the push to fail for the missing NIC', async () => /guest has no NIC with MAC 52:54:00:aa:cc:02/.test((await store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, vm.uuid))?.value.error ?? ''));
    await g.addNic('ens7', MAC1);
    requestGuestPush('web2'); // what the libvirt watcher does on "event 'device-added' for domain 'web2'"
    await until('the hot-added NIC configured', async () => (await addrsOf('ens7')).includes('203.0.113.11/24'));
    assert.deepEqual(await addrsOf('eth0'), ['203.0.113.10/24']);
    // (the quick retry of a NIC not there yet may have been first; the event's push follows)
    await until('the event to be handled', async () => logs.slice(logs.findIndex((l) => /web2: NIC hot-plug reported/.test(l))).some((l) => /web2: applied via/.test(l)) && logs.some((l) => /web2: NIC hot-plug reported/.test(l)));
  });

  test('a NIC unplugged and plugged again (same MAC, same document) is configured again', async () => {
    const vm = (await store.findVmByName('web2'))!;
    await until('the record to be ok', async () => (await store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, vm.uuid))?.value.ok === true);
    await g.removeNic('ens7');
    await g.addNic('ens7', MAC1);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await addrsOf('ens7'), [], 'unchanged document: nothing pushed without the event');
    requestGuestPush(vm.uuid);
    await until('the re-plugged NIC configured', async () => (await addrsOf('ens7')).includes('203.0.113.11/24'));
  });
});

test('hot-plug events: libvirt device-added/-removed lines and XAPI VIF plug/unplug name the VM to push', () => {
  assert.equal(hotplugDomain("event 'device-added' for domain 'web2': net1"), 'web2');
  assert.equal(hotplugDomain("2026-11-29 10:00:00.000+0000: event 'device-removed' for domain 'web2': net1"), 'web2');
  assert.equal(hotplugDomain("event 'lifecycle' for domain 'web2': Started Booted"), undefined);
  const cache = { get: (cls: string, ref: string | null | undefined) => (cls === 'VM' && ref === 'OpaqueRef:vm1' ? { uuid: 'u-vm1' } : undefined) };
  const vif = (before: boolean | undefined, after: boolean | undefined) => ({
    cls: 'VIF' as const, op: 'mod' as const, ref: 'OpaqueRef:vif1',
    before: before === undefined ? undefined : { VM: 'OpaqueRef:vm1', currently_attached: before },
    after: after === undefined ? undefined : { VM: 'OpaqueRef:vm1', currently_attached: after },
  });
  assert.deepEqual(vifPlugs(cache as never, [vif(false, true)]), ['u-vm1']); // VIF.plug
  assert.deepEqual(vifPlugs(cache as never, [vif(true, false)]), ['u-vm1']); // VIF.unplug
  assert.deepEqual(vifPlugs(cache as never, [vif(undefined, true)]), ['u-vm1']); // created attached
  assert.deepEqual(vifPlugs(cache as never, [vif(true, true)]), []); // another field changed
});
