// VIF locking through XAPI, static guest IPs, and the live loop of `serve`, against the simulator.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import type { EnforcerContext } from '../../src/core/enforcer.js';
import { xapiEnforcer } from '../../src/server/xapi/enforcer.js';
import { compileLockingPlan, lockingCalls } from '../../src/server/xapi/locking-plan.js';
import { pushStaticIpViaXapi } from '../../src/server/xapi/static-ip.js';
import { createXapiWatcher } from '../../src/server/xapi/watcher.js';
import { serve } from '../../src/daemon/serve.js';
import { setNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { allocate, release } from '../../src/core/service/ip.js';
import { setVif } from '../../src/core/service/vms.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { sh } from '../support/netns.js';

guardRootNamespace();

let sim: XapiSim;
let db: string;
let cleanup: () => void;
let store: Store;
const logs: string[] = [];
const ctx = (dryRun = false): EnforcerContext => ({ store, actor: 'tester', dryRun, log: (m) => logs.push(m) });
const WEB1 = '4b710316-1e00-5471-9f9e-776a512e68ae'; // web-01:1 on sspn-internal
let web1Ref: string;

let prevRunDir: string | undefined;
let prevNetns: string | undefined;
// `ipvisor plan|apply|status` run every enforcer, the host's too: as root it works in a network
// namespace of this test's (without root it cannot change anything), never on the machine itself
const HOST_NS = process.getuid?.() === 0 ? `ipvx-enf-${process.pid % 100000}` : undefined;
before(async () => {
  sim = await startXapiSim();
  ({ db, cleanup } = tempDb());
  // the host enforcer's lock and its record of the enforced store stay in the test's directory
  prevRunDir = process.env.IPVISOR_RUN_DIR;
  process.env.IPVISOR_RUN_DIR = dirname(db);
  prevNetns = process.env.IPVISOR_NETNS;
  if (HOST_NS) {
    await sh(['ip', 'netns', 'add', HOST_NS]);
    process.env.IPVISOR_NETNS = HOST_NS;
  }
  const pw = join(dirname(db), 'pw');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  let r = await cli(db, 'xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(db, 'xapi', 'sync');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  store = await openStore(db, { create: true });
  await setNetwork(store, 'sspn-internal', { subnets: ['10.99.0.0/24,gateway=10.99.0.1', 'fd99::/64,gateway=fd99::1'] }, 'tester');
  await createPool(store, { name: 'sspn-v4', network: 'sspn-internal', cidrs: ['10.99.0.0/24'] }, 'tester');
  await createPool(store, { name: 'sspn-v6', network: 'sspn-internal', cidrs: ['fd99::/64'] }, 'tester');
  web1Ref = sim.refByUuid('VIF', WEB1);
});
after(async () => {
  if (prevRunDir === undefined) delete process.env.IPVISOR_RUN_DIR;
  else process.env.IPVISOR_RUN_DIR = prevRunDir;
  if (prevNetns === undefined) delete process.env.IPVISOR_NETNS;
  else process.env.IPVISOR_NETNS = prevNetns;
  if (HOST_NS) await sh(['ip', 'netns', 'del', HOST_NS], { allowFail: true });
  await store?.close();
  await sim.close();
  cleanup();
});

const lockingCallsOn = (ref: string, since: number) => sim.calls.slice(since).filter((c) => c.method.startsWith('VIF.set_') && c.params[1] === ref).map((c) => `${c.method} ${JSON.stringify(c.params[2])}`);

test('pure: safe order — allow lists before locked; mode before lists when unlocking', () => {
  assert.deepEqual(lockingCalls('r', { mode: 'network_default', ipv4: [], ipv6: [] }, { mode: 'locked', ipv4: ['10.0.0.5'], ipv6: ['fd00::5'] }).map((c) => c.method), ['VIF.set_ipv4_allowed', 'VIF.set_ipv6_allowed', 'VIF.set_locking_mode']);
  assert.deepEqual(lockingCalls('r', { mode: 'locked', ipv4: ['10.0.0.5'], ipv6: [] }, { mode: 'unlocked', ipv4: [], ipv6: [] }).map((c) => c.method), ['VIF.set_locking_mode', 'VIF.set_ipv4_allowed']);
  // A foreign edit is corrected only by an owner; ipvisor's own new intent always wins.
  const desired = [{ vifUuid: 'v', label: 'vm:0', mode: 'locked' as const, ipv4: ['10.0.0.5'], ipv6: [], managed: true, skipped: [] }];
  const cur = new Map([['v', { ref: 'r', mode: 'locked', ipv4: ['10.0.0.5', '10.0.0.66'], ipv6: [] }]]);
  const applied = new Map([['v', { mode: 'locked', ipv4: ['10.0.0.5'], ipv6: [] }]]);
  const notOwner = compileLockingPlan(desired, cur, applied, { owner: false, connection: 'c' })[0]!;
  assert.equal(notOwner.calls.length, 0);
  assert.match(notOwner.drift!, /ipv4 \[10\.0\.0\.5\] -> \[10\.0\.0\.5, 10\.0\.0\.66\]/);
  assert.equal(compileLockingPlan(desired, cur, applied, { owner: true, connection: 'c' })[0]!.calls.length, 1);
  const newIntent = compileLockingPlan([{ ...desired[0]!, ipv4: ['10.0.0.7'] }], cur, applied, { owner: false, connection: 'c' })[0]!;
  assert.equal(newIntent.calls.length, 1);
});

test('allocate -> plan shows the lock, apply writes it in the safe order, second apply is a no-op', async () => {
  await allocate(store, { vif: 'web-01:1', address: '10.99.0.10' }, 'tester');
  await allocate(store, { vif: 'web-01:1', address: 'fd99::10' }, 'tester');
  const plan = await xapiEnforcer.plan(ctx(true));
  assert.equal(plan.length, 1, JSON.stringify(plan));
  assert.equal(plan[0]!.target, 'web-01:1 (lab)');
  assert.match(plan[0]!.detail!, /locking network_default -> locked, ipv4 \[\] -> \[10\.99\.0\.10\], ipv6 \[\] -> \[fd99::10\]/);
  // web-01:0 was locked by Xen Orchestra and ipvisor has no intent for it: untouched.
  const mark = sim.calls.length;
  const applied = await xapiEnforcer.apply(ctx());
  assert.equal(applied.length, 1);
  assert.deepEqual(lockingCallsOn(web1Ref, mark), ['VIF.set_ipv4_allowed ["10.99.0.10"]', 'VIF.set_ipv6_allowed ["fd99::10"]', 'VIF.set_locking_mode "locked"']);
  const vif = sim.record('VIF', web1Ref);
  assert.deepEqual([vif.locking_mode, vif.ipv4_allowed, vif.ipv6_allowed], ['locked', ['10.99.0.10'], ['fd99::10']]);
  assert.deepEqual(sim.record('VIF', sim.refByUuid('VIF', '19e19696-f503-5489-aa00-94ddc4a72f99')).ipv4_allowed, ['192.168.10.50']);
  assert.deepEqual(await xapiEnforcer.apply(ctx()), []);
  const ev = (await store.listEvents({ limit: 50 })).find((e) => e.action === 'xapi.apply');
  assert.equal(ev?.objectName, 'web-01:1');
});

test('static IP via VIF.configure_ipv4/6 when the guest supports it; a clear error otherwise', async () => {
  const res = await pushStaticIpViaXapi(store, 'web-01');
  assert.deepEqual(res.configured.map((c) => [c.vif, c.address, c.gateway]).sort(), [['web-01:1', '10.99.0.10/24', '10.99.0.1'], ['web-01:1', 'fd99::10/64', 'fd99::1']]);
  const vif = sim.record('VIF', web1Ref);
  assert.deepEqual([vif.ipv4_configuration_mode, vif.ipv4_addresses, vif.ipv4_gateway], ['Static', ['10.99.0.10/24'], '10.99.0.1']);
  assert.deepEqual(vif.ipv6_addresses, ['fd99::10/64']);
  // `ipvisor guest push` routes XAPI VMs here.
  sim.modify('VIF', web1Ref, { ipv4_configuration_mode: 'None', ipv4_addresses: [''] });
  const viaCli = await cli(db, 'guest', 'push', 'web-01', '--json');
  assert.equal(viaCli.code, 0, viaCli.stderr);
  assert.equal(viaCli.json.via, 'XAPI');
  assert.deepEqual(sim.record('VIF', web1Ref).ipv4_addresses, ['10.99.0.10/24']);
  sim.setGuestFeature('web-01', 'feature-static-ip-setting', null);
  await assert.rejects(pushStaticIpViaXapi(store, 'web-01'), /does not advertise feature-static-ip-setting/);
  const refused = await cli(db, 'guest', 'push', 'web-01');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^ipvisor: vm: the guest of 'web-01' does not advertise feature-static-ip-setting/);
  sim.setGuestFeature('web-01', 'feature-static-ip-setting', '1');
  // A VM without addresses: a clear refusal, not a push that did nothing.
  const empty = await cli(db, 'guest', 'push', 'db-01', '--json');
  assert.equal(empty.code, 2, empty.stderr);
  assert.equal(empty.error?.field, 'vm');
  assert.match(empty.error?.message ?? '', /no VIF of 'db-01' holds a primary address/);
  // The simulator really enforces the locking constraint; ipvisor writes the allow list first.
  await allocate(store, { vif: 'db-01:0', address: '10.99.0.30' }, 'tester');
  sim.setGuestFeature('db-01', 'feature-static-ip-setting', '1');
  const db01 = await pushStaticIpViaXapi(store, 'db-01');
  assert.deepEqual(db01.configured.map((c) => c.address), ['10.99.0.30/24']);
  assert.deepEqual(sim.record('VIF', sim.refByUuid('VIF', '7a4a560f-2489-5c71-a110-393342f0d6f9')).ipv4_allowed, ['10.99.0.30']);
});

test('guest auto-push of an XAPI VM runs on the control plane (server placement) from the store', async () => {
  const { createGuestPushWatcher, GUEST_PUSH_DOC } = await import('../../src/agent/guest/watcher.js');
  const { registerXapiGuestPush } = await import('../../src/server/xapi/guest-push.js');
  const { loadWatchers } = await import('../../src/drivers/index.js');
  // the registry runs one guest push watcher per guest transport where its driver runs: XAPI's on
  // the control plane (server placement), qemu-ga's on each host's agent
  assert.deepEqual((await loadWatchers(['server'])).map((w) => w.name).sort(), ['guest-auto-push', 'xapi']);
  assert.deepEqual((await loadWatchers(['agent'])).map((w) => w.name).filter((n) => n === 'guest-auto-push'), ['guest-auto-push']);
  registerXapiGuestPush(async () => ({ store, close: async () => undefined }));
  const db01 = sim.refByUuid('VIF', '7a4a560f-2489-5c71-a110-393342f0d6f9');
  sim.modify('VIF', db01, { ipv4_configuration_mode: 'None', ipv4_addresses: [''] });
  assert.equal((await cli(db, 'guest', 'auto-push', 'on', '--vm', 'db-01')).code, 0);
  const ac = new AbortController();
  const qga = createGuestPushWatcher({ transport: 'qga', intervalMs: 100 });
  const xapi = createGuestPushWatcher({ transport: 'xapi', intervalMs: 100 });
  const seen: string[] = [];
  try {
    for (const w of [qga, xapi]) await w.start({ store, actor: 'server', requestReconcile: () => undefined, log: (m) => seen.push(m), signal: ac.signal });
    const end = Date.now() + 10_000;
    while (!sim.record('VIF', db01).ipv4_addresses.includes('10.99.0.30/24')) {
      assert.ok(Date.now() < end, `no push through XAPI: ${seen.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const vm = (await store.findVmByName('db-01'))!;
    const rec = (await store.getDoc<{ ok: boolean; via: string }>(GUEST_PUSH_DOC, vm.uuid))!.value;
    assert.deepEqual([rec.ok, rec.via], [true, 'XAPI']);
    assert.equal(seen.filter((l) => /db-01: applied via/.test(l)).length, 1, 'pushed once, by the XAPI watcher only');
  } finally {
    ac.abort();
    await qga.stop();
    await xapi.stop();
    assert.equal((await cli(db, 'guest', 'auto-push', 'off', '--vm', 'db-01')).code, 0);
  }
});

test('release unlocks in the safe order: mode first, then the list', async () => {
  await release(store, { address: '10.99.0.10' }, 'tester');
  await release(store, { address: 'fd99::10' }, 'tester');
  const mark = sim.calls.length;
  const changes = await xapiEnforcer.apply(ctx());
  assert.equal(changes.filter((c) => c.target === 'web-01:1 (lab)').length, 1);
  assert.deepEqual(lockingCallsOn(web1Ref, mark), ['VIF.set_locking_mode "unlocked"', 'VIF.set_ipv4_allowed []', 'VIF.set_ipv6_allowed []']);
  // An explicit VIF mode is written explicitly too.
  await setVif(store, 'web-01:1', { locking: 'disabled' }, 'tester');
  await xapiEnforcer.apply(ctx());
  assert.equal(sim.record('VIF', web1Ref).locking_mode, 'disabled');
  await setVif(store, 'web-01:1', { locking: 'network_default' }, 'tester');
  await xapiEnforcer.apply(ctx());
  assert.equal(sim.record('VIF', web1Ref).locking_mode, 'unlocked');
});

test('a foreign change is drift: reported, corrected only when ipvisor owns locking', async () => {
  await allocate(store, { vif: 'web-01:1', address: '10.99.0.11' }, 'tester');
  await xapiEnforcer.apply(ctx());
  sim.setVifLockingFromOutside(web1Ref, { ipv4_allowed: ['10.99.0.11', '10.99.0.99'] });
  logs.length = 0;
  assert.deepEqual(await xapiEnforcer.plan(ctx(true)), []);
  assert.ok(logs.some((l) => /web-01:1 \(lab\): foreign change ipv4 \[10\.99\.0\.11\] -> \[10\.99\.0\.11, 10\.99\.0\.99\]; not corrected/.test(l)), logs.join('\n'));
  const status = (await xapiEnforcer.status!(ctx(true))) as { pools: Array<{ vifs: Array<{ vif: string; locking: string; ipv4: string[]; managed: boolean; drift: string | null }> }> };
  assert.match(status.pools[0]!.vifs.find((v) => v.vif === 'web-01:1')!.drift!, /10\.99\.0\.99/);
  // status shows what XAPI holds: the kept foreign list, and Xen Orchestra's lock on web-01:0 that ipvisor leaves alone.
  assert.deepEqual(status.pools[0]!.vifs.find((v) => v.vif === 'web-01:1')!.ipv4, ['10.99.0.11', '10.99.0.99']);
  const web0 = status.pools[0]!.vifs.find((v) => v.vif === 'web-01:0')!;
  assert.deepEqual([web0.locking, web0.ipv4, web0.managed], ['locked', ['192.168.10.50'], false]);
  const r = await cli(db, 'xapi', 'set', 'lab', '--owner');
  assert.equal(r.code, 0, r.stderr);
  const plan = await xapiEnforcer.plan(ctx(true));
  assert.match(plan.find((c) => c.target === 'web-01:1 (lab)')!.detail!, /ipv4 \[10\.99\.0\.11, 10\.99\.0\.99\] -> \[10\.99\.0\.11\]; corrects a foreign change/);
  // As owner, ipvisor is the truth for every VIF of the pool: the lock Xen Orchestra put on web-01:0 goes too.
  assert.match(plan.find((c) => c.target === 'web-01:0 (lab)')!.detail!, /locking locked -> unlocked, ipv4 \[192\.168\.10\.50\] -> \[\]/);
  await xapiEnforcer.apply(ctx());
  assert.deepEqual(sim.record('VIF', web1Ref).ipv4_allowed, ['10.99.0.11']);
});

test('the licence restriction is detected and reported; nothing is written', async () => {
  sim.setRestriction('restrict_vif_locking', true);
  try {
    await allocate(store, { vif: 'web-01:1', address: '10.99.0.12' }, 'tester');
    logs.length = 0;
    const mark = sim.calls.length;
    assert.deepEqual(await xapiEnforcer.plan(ctx(true)), [], 'plan shows no change that apply cannot make');
    assert.ok(logs.some((l) => /restricted by the licence/.test(l)), logs.join('\n'));
    logs.length = 0;
    assert.deepEqual(await xapiEnforcer.apply(ctx()), []);
    assert.ok(logs.some((l) => /restricted by the licence/.test(l)), logs.join('\n'));
    assert.deepEqual(lockingCallsOn(web1Ref, mark), []);
  } finally {
    sim.setRestriction('restrict_vif_locking', false);
  }
  await xapiEnforcer.apply(ctx());
  assert.deepEqual(sim.record('VIF', web1Ref).ipv4_allowed, ['10.99.0.11', '10.99.0.12']);
});

test('serve: the live event loop syncs new VIFs and repairs a foreign change at once', async () => {
  const ac = new AbortController();
  const serveLogs: string[] = [];
  const running = serve({ store, log: (m) => serveLogs.push(m), signal: ac.signal, enforcers: [xapiEnforcer], watchers: [createXapiWatcher({ eventTimeout: 0.5, retryDelayMs: 100 })], intervalMs: 60_000, debounceMs: 20 });
  const waitFor = async (what: string, fn: () => Promise<boolean> | boolean): Promise<void> => {
    const end = Date.now() + 10_000;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}\n${serveLogs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await waitFor('following', () => serveLogs.some((l) => /lab: following events/.test(l)));
    const newRef = sim.addVif('web-01', 'sspn-internal', { MAC: '02:aa:bb:cc:dd:01' });
    const uuid = sim.record('VIF', newRef).uuid as string;
    await waitFor('new VIF in the store', async () => !!(await store.getVif(uuid)));
    await allocate(store, { vif: uuid, address: '10.99.0.40' }, 'tester');
    // (a reconcile comes with the next event or interval; XO-style edit triggers one now)
    sim.setVifLockingFromOutside(web1Ref, { locking_mode: 'unlocked' });
    await waitFor('foreign unlock repaired', () => sim.record('VIF', web1Ref).locking_mode === 'locked');
    await waitFor('new VIF locked', () => sim.record('VIF', newRef).locking_mode === 'locked' && sim.record('VIF', newRef).ipv4_allowed[0] === '10.99.0.40');
    // Deleted in XAPI: the address is released.
    sim.deleteVif(newRef);
    await waitFor('released', async () => (await store.listAssignments({ address: '10.99.0.40' })).length === 0);
  } finally {
    ac.abort();
    await running;
  }
  assert.equal(sim.sessions.size, 0, 'every session logged out');
});

test('plan/apply fail (exit 1) when a pool cannot be reached, after the reachable ones; status names it', async () => {
  const pw = join(dirname(db), 'pw');
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  let r = await cli(db, 'xapi', 'connect', 'gone', '--url', 'http://127.0.0.1:1', '--insecure-http', '--user', 'root', '--password-file', pw, '--no-check');
  assert.equal(r.code, 0, r.stderr);
  try {
    for (const cmd of ['plan', 'apply']) {
      r = await cli(db, cmd);
      assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^ipvisor: xapi gone: .*ECONNREFUSED.*; VIF locking on that pool was not checked$/m, cmd);
      assert.doesNotMatch(r.stdout, /No changes/, cmd);
    }
    const st = await cli(db, 'status', '--json');
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.xapi.unreachable[0].connection, 'gone');
    assert.equal(st.json.xapi.pools[0].connection, 'lab', 'the reachable pool is still reported');
  } finally {
    r = await cli(db, 'xapi', 'disconnect', 'gone');
    assert.equal(r.code, 0, r.stderr);
  }
});
