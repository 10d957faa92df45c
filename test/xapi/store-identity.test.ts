// Fail closed across stores on XAPI, as on the host (core/compile/store-switch.ts): a pool records in
// its other_config which store its VIF locking came from; a store with another identity (a fresh
// or replaced database, a second ipvisor pointed at the same pool) never unlocks or changes what the
// pool enforces without --force: plan shows the removals and why, apply refuses with STORE_IDENTITY
// and XAPI keeps its locks; a store that only adds locks is adopted; --force applies. Against the
// XAPI simulator (test/support/xapi-sim).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import type { EnforcerContext } from '../../src/core/enforcer.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { ORIGIN_KEY, xapiEnforcer } from '../../src/server/xapi/enforcer.js';
import { setNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { allocate } from '../../src/core/service/ip.js';

const WEB1 = '4b710316-1e00-5471-9f9e-776a512e68ae'; // web-01:1 on sspn-internal, network_default in the fixture
let sim: XapiSim;
const stores: Array<{ store: Store; cleanup: () => void }> = [];

/** A store of its own, connected to the simulated pool and synced, with a pool on sspn-internal. */
async function connectedStore(opts: { owner?: boolean } = {}): Promise<{ store: Store; db: string }> {
  const { db, cleanup } = tempDb();
  const pw = join(dirname(db), 'pw');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  for (const args of [['xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw, ...(opts.owner ? ['--owner'] : [])], ['xapi', 'sync']]) {
    const r = await cli(db, ...args);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  }
  const store = await openStore(db);
  stores.push({ store, cleanup });
  await setNetwork(store, 'sspn-internal', { subnets: ['10.99.0.0/24,gateway=10.99.0.1'] }, 'tester');
  await createPool(store, { name: 'sspn-v4', network: 'sspn-internal', cidrs: ['10.99.0.0/24'] }, 'tester');
  return { store, db };
}

const logs: string[] = [];
const ctx = (store: Store, o: { dryRun?: boolean; force?: boolean } = {}): EnforcerContext => ({ store, actor: 'tester', dryRun: !!o.dryRun, force: o.force, log: (m) => logs.push(m) });
const vif = (uuid: string) => sim.record('VIF', sim.refByUuid('VIF', uuid));
const lockOf = (uuid: string) => [vif(uuid).locking_mode, vif(uuid).ipv4_allowed];
const origin = () => {
  const raw = sim.record('pool', sim.poolRef).other_config[ORIGIN_KEY];
  return raw === undefined ? undefined : (JSON.parse(raw) as { storeId: string; location: string });
};

before(async () => {
  sim = await startXapiSim();
});
after(async () => {
  for (const s of stores) {
    await s.store.close();
    s.cleanup();
  }
  await sim.close();
});

test('another store never unlocks what the pool enforces without --force; one that only adds is adopted', async () => {
  // store A locks web-01:1 and becomes the pool's recorded origin
  const { store: a } = await connectedStore();
  await allocate(a, { vif: 'web-01:1', address: '10.99.0.10' }, 'tester');
  assert.equal((await xapiEnforcer.apply(ctx(a))).length, 1);
  assert.deepEqual(lockOf(WEB1), ['locked', ['10.99.0.10']]);
  const idA = (await a.identity()).id;
  assert.equal(origin()?.storeId, idA, 'the pool records which store its locking came from');
  assert.equal(sim.record('pool', sim.poolRef).other_config.auto_poweron, 'true', 'the other keys of other_config stay');
  assert.deepEqual(await xapiEnforcer.apply(ctx(a)), [], 'the same store again: nothing to refuse or do');

  // store B: fresh, same pool, owning its locking, no address for web-01:1 -> applying would unlock
  // it (and the pool's other locks)
  const { store: b } = await connectedStore({ owner: true });
  logs.length = 0;
  const plan = await xapiEnforcer.plan(ctx(b, { dryRun: true }));
  const web1 = plan.find((c) => c.target === 'web-01:1 (lab)');
  assert.equal(web1?.op, '~', `plan shows the removal: ${JSON.stringify(plan)}`);
  assert.match(web1!.detail!, /locking locked -> unlocked, ipv4 \[10\.99\.0\.10\] -> \[\]/);
  assert.ok(logs.some((l) => /^warning: .* is not the store XAPI pool lab's locking came from \(identity .*\).*refused without --force/.test(l)), logs.join('\n'));

  await assert.rejects(xapiEnforcer.apply(ctx(b)), (e: unknown) => {
    assert.ok(e instanceof IpvisorError);
    assert.equal(e.code, 'STORE_IDENTITY');
    assert.match(e.message, /^xapi lab: .*refused without --force.*Removals: .*~ xapi-vif web-01:1 \(lab\) \(locking locked -> unlocked/);
    return true;
  });
  assert.deepEqual(lockOf(WEB1), ['locked', ['10.99.0.10']], 'XAPI keeps the lock');
  assert.equal(origin()?.storeId, idA, 'and its record');
  const status = (await xapiEnforcer.status!(ctx(b, { dryRun: true }))) as { pools: Array<{ enforcedStore: { storeId: string } | null; refused: string | null }> };
  assert.equal(status.pools[0]!.enforcedStore?.storeId, idA);
  assert.match(String(status.pools[0]!.refused), /refused without --force/);
  const locked = [...sim.table('VIF').values()].filter((v) => v.locking_mode === 'locked').length;
  assert.ok(locked >= 2, 'the fixture locks and A\'s lock all stay');

  // store C holds the same lock and adds one to a VIF that enforces nothing yet: only additions, adopted
  const { store: c, db: dbC } = await connectedStore();
  await allocate(c, { vif: 'web-01:1', address: '10.99.0.10' }, 'tester');
  const added = sim.addVif('web-01', 'sspn-internal', { MAC: '02:aa:bb:cc:dd:77' });
  const addedUuid = sim.record('VIF', added).uuid as string;
  assert.equal((await cli(dbC, 'xapi', 'sync')).code, 0);
  await allocate(c, { vif: addedUuid, address: '10.99.0.77' }, 'tester');
  logs.length = 0;
  const adopted = await xapiEnforcer.apply(ctx(c));
  assert.deepEqual(adopted.map((c) => c.target), ['web-01:2 (lab)'], JSON.stringify(adopted));
  assert.ok(logs.some((l) => /it removes nothing, so it is adopted/.test(l)), logs.join('\n'));
  assert.equal(origin()?.storeId, (await c.identity()).id, 'the pool now follows store C');

  // now A is the other store: a change of a lock the pool holds (an address added to web-01:1) is
  // refused too, and --force applies it
  await allocate(a, { vif: 'web-01:1', address: '10.99.0.11' }, 'tester');
  await assert.rejects(xapiEnforcer.apply(ctx(a)), { code: 'STORE_IDENTITY' });
  assert.deepEqual(lockOf(WEB1), ['locked', ['10.99.0.10']]);
  logs.length = 0;
  const forced = await xapiEnforcer.apply(ctx(a, { force: true }));
  assert.deepEqual(forced.map((c) => c.target), ['web-01:1 (lab)']);
  assert.ok(logs.some((l) => /--force: applying its 1 removal\(s\)/.test(l)), logs.join('\n'));
  assert.deepEqual(lockOf(WEB1), ['locked', ['10.99.0.10', '10.99.0.11']]);
  assert.equal(origin()?.storeId, idA);

  // teardown by the recorded store gives its VIFs back and takes the record with it; B's lock stays
  await xapiEnforcer.teardown!(ctx(a));
  assert.deepEqual(lockOf(WEB1), ['network_default', []]);
  assert.deepEqual(lockOf(addedUuid), ['locked', ['10.99.0.77']]);
  assert.equal(origin(), undefined);
});
