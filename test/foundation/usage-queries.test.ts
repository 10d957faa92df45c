// The store's counting, ranged and newest-first queries (UsageStore, listEvents order/actor) give
// the same answers as the full listings they replace, on SQLite and on a real PostgreSQL: pool usage
// per kind (holds, reservations, routed prefixes, expired holds), a tenant's usage (never another
// tenant's), a /24's assignments (a prefix starting before it included), the map, an address's
// state, and the audit log's newest page with the audit page's filters.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../../src/core/store/open.js';
import type { Store, StoreTx, UsageCount } from '../../src/core/store/store.js';
import type { Assignment, AuditEvent } from '../../src/core/model/types.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool, poolUsage } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate, release, reserve } from '../../src/core/service/ip.js';
import { createTenant, tenantRef, tenantUsage } from '../../src/core/service/tenants.js';
import { eventsPage, listEvents, listPools, relatedTo, showAddress, showNetwork, tenantEventFilter } from '../../src/core/service/views.js';
import { poolMap } from '../../src/core/service/pool-map.js';
import { describeAddress } from '../../src/core/service/address-info.js';
import { blockCells, blockSummaries, type MapInput } from '../../src/core/ipam/address-map.js';
import { BITS, formatAddress, parseAddress, prefixSize } from '../../src/core/ipam/addr.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { storeBackends } from '../support/backends.js';

const start = (a: Assignment) => parseAddress(a.address).value;
const end = (a: Assignment) => start(a) + prefixSize(a.family, a.prefixLength) - 1n;

/** A VIF's single address (primary or additional) is 'address' in the pool counts and spans. */
const poolKind = (a: Assignment) => ((a.kind === 'primary' || a.kind === 'additional') && a.prefixLength === BITS[a.family] ? 'address' : a.kind);

/** Counts grouped as the store groups them, from a full listing (`byKind`: every kind told apart). */
function countsFrom(list: Assignment[], byKind = false): UsageCount[] {
  const m = new Map<string, UsageCount>();
  for (const a of list) {
    const kind = byKind ? a.kind : poolKind(a);
    const k = `${a.poolUuid}|${kind}|${a.family}|${a.prefixLength}`;
    const c = m.get(k) ?? { poolUuid: a.poolUuid, kind, family: a.family, prefixLength: a.prefixLength, count: 0 };
    c.count++;
    m.set(k, c);
  }
  return sorted([...m.values()]);
}
const sorted = (c: UsageCount[]) => [...c].sort((a, b) => `${a.poolUuid}|${a.kind}|${a.family}|${a.prefixLength}`.localeCompare(`${b.poolUuid}|${b.kind}|${b.family}|${b.prefixLength}`));

/** A tenant's assignments as the listing found them: the VIFs of the VMs it owns. */
async function tenantListing(tx: StoreTx, tenant: string): Promise<Assignment[]> {
  const vms = new Set((await tx.listVms()).filter((v) => v.owner === tenant).map((v) => v.uuid));
  const vifs = new Set((await tx.listVifs()).filter((v) => vms.has(v.vmUuid)).map((v) => v.uuid));
  return (await tx.listAssignments()).filter((a) => a.vifUuid !== null && vifs.has(a.vifUuid));
}

/** The map's input as it was built from the full listing (every VIF and VM named). */
async function fullMapInput(tx: StoreTx, poolName: string): Promise<MapInput> {
  const pool = (await tx.findPoolByName(poolName))!;
  const network = (await tx.getNetwork(pool.networkUuid))!;
  const vifs = new Map((await tx.listVifs()).map((v) => [v.uuid, v]));
  const vms = new Map((await tx.listVms()).map((v) => [v.uuid, v]));
  return {
    pool, network, holds: await tx.listHolds(pool.uuid),
    assignments: (await tx.listAssignments({ poolUuid: pool.uuid })).map((a) => {
      const vif = a.vifUuid ? vifs.get(a.vifUuid) : undefined;
      const vm = vif ? vms.get(vif.vmUuid) : undefined;
      return { ...a, holder: vif && vm ? `${vm.name}:${vif.device}` : a.note };
    }),
  };
}

for (const backend of storeBackends()) {
  describe(`usage queries equal the full listings (${backend.name})`, { skip: backend.skip }, () => {
    let s: Store;
    before(async () => {
      await backend.setup();
      s = await openStore(await backend.newUrl(), { create: true });
      const a = 'test';
      await createNetwork(s, { name: 'n', subnets: ['10.50.0.0/16,gateway=10.50.0.1', 'fd00:50::/64'] }, a);
      await createNetwork(s, { name: 'm', subnets: ['10.51.0.0/24'] }, a);
      await createPool(s, { name: 'lan4', network: 'n', cidrs: ['10.50.0.0/22'], exclude: ['10.50.1.8/29', '10.50.1.16/30'], hold: 3600 }, a);
      await createPool(s, { name: 'short', network: 'n', cidrs: ['10.50.4.0/24'], hold: 1 }, a);
      await createPool(s, { name: 'routed', network: 'n', cidrs: ['10.70.8.0/21'], purpose: 'routed' }, a);
      await createPool(s, { name: 'lan6', network: 'n', cidrs: ['fd00:50::/64'] }, a);
      await createPool(s, { name: 'other', network: 'm', cidrs: ['10.51.0.0/24'] }, a);
      await createTenant(s, { name: 't1', pools: ['lan4', 'routed', 'lan6'], quota: ['lan4=1000', 'family4=2000'] }, a);
      await createTenant(s, { name: 't2', pools: ['lan4', 'short'] }, a);
      const vms: Array<[string, string | undefined]> = [['a1', 't1'], ['a2', 't1'], ['b1', 't2'], ['c1', undefined]];
      let mac = 0;
      for (const [name, owner] of vms) {
        await createVm(s, { name, owner }, a);
        await addVif(s, { vm: name, network: 'n', mac: `52:54:00:50:00:${(++mac).toString(16).padStart(2, '0')}` }, a);
      }
      await addVif(s, { vm: 'c1', network: 'm', mac: '52:54:00:50:01:01' }, a);
      await addVif(s, { vm: 'b1', network: 'm', mac: '52:54:00:50:01:02' }, a);
      // Addresses spread over VMs and tenants, across /24 boundaries of lan4.
      for (let i = 0; i < 300; i++) await allocate(s, { vif: `${['a1', 'a2', 'b1', 'c1'][i % 4]}:0`, pool: 'lan4' }, a);
      for (let i = 0; i < 5; i++) await allocate(s, { vif: 'a1:0', family: 6 }, a);
      for (let i = 0; i < 7; i++) await allocate(s, { vif: i % 2 ? 'c1:1' : 'b1:1', pool: 'other' }, a);
      for (let i = 0; i < 6; i++) await allocate(s, { vif: 'b1:0', pool: 'short' }, a);
      // Routed prefixes: a /22 spans four /24s (a block's range starts inside it), /29s and a /28.
      await allocate(s, { vif: 'a1:0', pool: 'routed', prefixLength: 22 }, a);
      await allocate(s, { vif: 'a2:0', pool: 'routed', prefixLength: 29 }, a);
      await allocate(s, { vif: 'b1:0', pool: 'routed', prefixLength: 28 }, a);
      await allocate(s, { vif: 'c1:0', pool: 'routed', prefixLength: 29 }, a);
      // Reservations (no VIF: nobody's quota), a reserved prefix among the routed ones.
      await reserve(s, { address: '10.50.3.200', pool: 'lan4', note: 'printer' }, a);
      await reserve(s, { address: '10.50.3.201', pool: 'lan4', note: 'switch' }, a);
      await reserve(s, { address: '10.70.14.0/24', pool: 'routed', note: 'customer block' }, a);
      // Holds: released addresses of lan4 (an hour) and of 'short' (expired after a second, not yet
      // reclaimed: no allocation from 'short' follows).
      for (const x of ['10.50.0.10', '10.50.0.11', '10.50.1.40']) await release(s, { address: x }, a);
      for (const x of ['10.50.4.1', '10.50.4.3']) await release(s, { address: x }, a);
      await new Promise((r) => setTimeout(r, 1100));
    });
    after(async () => {
      await s?.close();
      await backend.teardown();
    });

    test('pool usage: counts grouped in SQL equal the listing, holds and expired holds included', async () => {
      await s.transaction(async (tx) => {
        const all = await tx.listAssignments();
        assert.deepEqual(sorted(await tx.countUsage()), countsFrom(all));
        const pools = await tx.listPools();
        for (const p of pools) assert.deepEqual(sorted(await tx.countUsage([p.uuid])), countsFrom(all.filter((x) => x.poolUuid === p.uuid)), p.name);
        assert.deepEqual(await tx.countUsage([]), []);
        const short = pools.find((p) => p.name === 'short')!;
        assert.ok((await tx.listHolds(short.uuid)).some((h) => h.until <= new Date().toISOString()), 'an expired hold is still stored');
        // The views: usage from the counts equals usage computed from the listing.
        const views = await listPools(tx);
        assert.equal(views.length, pools.length);
        for (const v of views) {
          const n = (await tx.getNetwork(v.networkUuid))!;
          const list = all.filter((x) => x.poolUuid === v.uuid);
          let assigned = 0n, reserved = 0n, routed = 0n;
          for (const x of list) {
            const size = prefixSize(x.family, x.prefixLength);
            if (x.kind === 'reserved') reserved += size; else if (x.kind === 'routed') routed += size; else assigned += size;
          }
          assert.equal(v.usage.assigned, assigned.toString(), v.name);
          assert.equal(v.usage.reserved, reserved.toString(), v.name);
          assert.equal(v.usage.routed, routed.toString(), v.name);
          const held = (await tx.listHolds(v.uuid)).reduce((sum, h) => sum + (h.end - h.start + 1n), 0n);
          assert.equal(v.usage.held, held.toString(), v.name);
          assert.deepEqual(v.usage, await poolUsage(tx, v, n), v.name);
        }
        assert.equal(views.find((v) => v.name === 'lan4')!.usage.held, '3');
        assert.equal(views.find((v) => v.name === 'short')!.usage.held, '2');
        assert.equal(views.find((v) => v.name === 'routed')!.usage.reserved, '256');
        // A tenant's pool list: only its pools, same usage.
        const t2 = await listPools(tx, {}, { tenant: 't2' });
        assert.deepEqual(t2.map((p) => p.name).sort(), ['lan4', 'short']);
        for (const p of t2) assert.deepEqual(p.usage, views.find((v) => v.uuid === p.uuid)!.usage);
        // A network's assignment count and pool usage.
        const net = await showNetwork(tx, 'n');
        assert.equal(net.assignmentCount, all.filter((x) => x.networkUuid === net.uuid).length);
        const m = await showNetwork(tx, 'm');
        assert.equal(m.assignmentCount, 7);
      });
    });

    test("a tenant's usage counts its own VMs' assignments only", async () => {
      await s.transaction(async (tx) => {
        for (const t of ['t1', 't2', 'nobody']) {
          const mine = await tenantListing(tx, t);
          assert.deepEqual(sorted(await tx.countOwnerUsage(t)), countsFrom(mine, true), t);
        }
        const t1 = await tenantUsage(tx, await tenantRef(tx, 't1'));
        const mine1 = await tenantListing(tx, 't1');
        const lan4 = (await tx.findPoolByName('lan4'))!;
        assert.equal(t1.pools.find((p) => p.poolUuid === lan4.uuid)!.used, mine1.filter((x) => x.poolUuid === lan4.uuid).length);
        assert.equal(t1.family4.used, mine1.filter((x) => x.family === 4).length);
        assert.equal(t1.family6.used, 5);
        const t2 = await tenantUsage(tx, await tenantRef(tx, 't2'));
        const mine2 = await tenantListing(tx, 't2');
        assert.equal(t2.family4.used, mine2.filter((x) => x.family === 4).length);
        assert.equal(t2.family6.used, 0);
        // Disjoint: a reservation (no VIF) and an unowned VM's addresses count for nobody.
        const all = await tx.listAssignments();
        const c1 = (await tx.listVifs((await tx.findVmByName('c1'))!.uuid)).map((v) => v.uuid);
        assert.equal(t1.family4.used + t2.family4.used, all.filter((x) => x.family === 4 && x.vifUuid !== null && !c1.includes(x.vifUuid)).length);
      });
      // The quota is enforced from the same count: a quota of what t1 holds in lan4 refuses one
      // more, a quota of one more allows exactly one.
      const setQuota = async (extra: number) => s.transaction(async (tx) => {
        const t1 = await tenantRef(tx, 't1');
        const lan4 = (await tx.findPoolByName('lan4'))!;
        const used = (await tenantListing(tx, 't1')).filter((x) => x.poolUuid === lan4.uuid).length;
        await tx.putDoc('tenant', 't1', { ...t1, quota: { ...t1.quota, pools: { ...t1.quota.pools, [lan4.uuid]: used + extra } } });
      }, { write: true });
      const quotaError = (e: unknown) => e instanceof IpvisorError && e.code === 'QUOTA_EXCEEDED';
      await setQuota(0);
      await assert.rejects(allocate(s, { vif: 'a1:0', pool: 'lan4' }, 'test'), quotaError);
      await setQuota(1);
      await allocate(s, { vif: 'a2:0', pool: 'lan4' }, 'test');
      await assert.rejects(allocate(s, { vif: 'a1:0', pool: 'lan4' }, 'test'), quotaError);
      // another tenant's VMs are not bound by it
      await allocate(s, { vif: 'b1:0', pool: 'lan4' }, 'test');
    });

    test("a block's assignments by key range, prefixes starting before it included", async () => {
      await s.transaction(async (tx) => {
        for (const p of await tx.listPools()) {
          const list = await tx.listAssignments({ poolUuid: p.uuid });
          const ranges: Array<[bigint, bigint]> = [];
          if (p.family === 4) {
            const first = parseAddress(p.entries[0].first).value;
            for (let b = first; b < first + 2048n; b += 256n) ranges.push([b, b + 255n]);
            ranges.push([first + 5n, first + 5n], [first + 300n, first + 1030n]);
          } else {
            const first = parseAddress(p.entries[0].first).value;
            ranges.push([first, first + 255n], [first + 2n, first + 3n]);
          }
          for (const [lo, hi] of ranges) {
            const want = list.filter((x) => start(x) <= hi && end(x) >= lo);
            assert.deepEqual(await tx.listAssignmentsInRange(p.uuid, lo, hi), want, `${p.name} ${formatAddress(p.family, lo)}-${formatAddress(p.family, hi)}`);
          }
          // Spans: every assignment's key, length and kind, in order.
          assert.deepEqual(await tx.listAssignmentSpans(p.uuid), list.map((x) => ({ start: start(x), prefixLength: x.prefixLength, kind: poolKind(x) })));
        }
        // The /22 starts at 10.70.8.0 and covers 10.70.9.0/24 to 10.70.11.0/24.
        const routed = (await tx.findPoolByName('routed'))!;
        const inside = await tx.listAssignmentsInRange(routed.uuid, parseAddress('10.70.10.0').value, parseAddress('10.70.10.255').value);
        assert.deepEqual(inside.map((x) => `${x.address}/${x.prefixLength}`), ['10.70.8.0/22']);
      });
    });

    test("VIFs' addresses from the columns equal those of the documents", async () => {
      await s.transaction(async (tx) => {
        const all = (await tx.listAssignments()).filter((x) => x.vifUuid !== null);
        const want = (list: Assignment[]) => list.map((x) => ({ vifUuid: x.vifUuid, family: x.family, address: x.address, prefixLength: x.prefixLength, kind: x.kind }));
        assert.deepEqual(await tx.listVifAddresses(), want(all));
        const vifs = await tx.listVifs();
        assert.ok(all.some((x) => x.family === 6) && all.some((x) => x.prefixLength < 32), 'IPv6 addresses and prefixes among them');
        // a few VIFs (an IN list), and more than the scan threshold (a scan kept to the set)
        const some = vifs.filter((_, i) => i % 2 === 0).map((v) => v.uuid);
        assert.deepEqual(await tx.listVifAddresses(some), want(all.filter((x) => some.includes(x.vifUuid!))));
        const many = [...some, ...Array.from({ length: 300 }, () => crypto.randomUUID())];
        assert.deepEqual(await tx.listVifAddresses(many), want(all.filter((x) => some.includes(x.vifUuid!))));
        assert.deepEqual(await tx.listVifAddresses([]), []);
      });
    });

    test('the map: summaries and cells equal those built from the full listing', async () => {
      await s.transaction(async (tx) => {
        for (const name of ['lan4', 'short', 'routed', 'other']) {
          const full = await fullMapInput(tx, name);
          const map = await poolMap(tx, name);
          assert.deepEqual(map.blocks, blockSummaries(full), name);
          assert.deepEqual(map.usage, await poolUsage(tx, full.pool as never, full.network as never), name);
          for (const b of map.blocks!) {
            const cells = (await poolMap(tx, name, { block: b.block })).cells;
            assert.deepEqual(cells, blockCells(full, b.block), `${name} ${b.block}`);
            // The summary's painter agrees with the cells' own rule (first mark that covers wins).
            const counts: Record<string, number> = {};
            for (const c of cells!) if (c.state !== 'outside') counts[c.state] = (counts[c.state] ?? 0) + 1;
            counts.free ??= 0;
            assert.deepEqual(b.counts, counts, `${name} ${b.block} counts`);
          }
        }
        const cells = (await poolMap(tx, 'lan4', { block: '10.50.0.0/24' })).cells!;
        assert.deepEqual(cells.find((c) => c.address === '10.50.0.10'), { address: '10.50.0.10', state: 'held', holder: cells.find((c) => c.address === '10.50.0.10')!.holder });
        assert.match(cells.find((c) => c.address === '10.50.0.2')!.holder!, /^(a1|a2|b1|c1):0$/);
        const r = (await poolMap(tx, 'routed', { block: '10.70.9.0/24' })).cells!;
        assert.ok(r.every((c) => c.state === 'assigned' && c.holder === 'a1:0'), 'the /22 that starts before the block fills it');
        assert.equal((await poolMap(tx, 'lan4', { block: '10.50.3.0/24' })).cells!.find((c) => c.address === '10.50.3.200')!.holder, 'printer');
      });
    });

    test("an address's state: found by point probes as by the listing", async () => {
      await s.transaction(async (tx) => {
        const all = await tx.listAssignments();
        const probes = ['10.50.0.2', '10.50.0.10', '10.50.1.12', '10.50.3.200', '10.70.8.0', '10.70.10.77', '10.70.11.255', '10.70.14.9', '10.50.4.1', '10.50.4.2', '10.51.0.3', '10.50.0.1', '10.60.0.1', 'fd00:50::2', 'fd00:50::ffff'];
        for (const text of probes) {
          const v = parseAddress(text);
          const covering = all.find((x) => x.family === v.family && start(x) <= v.value && end(x) >= v.value);
          const info = await describeAddress(tx, text);
          if (covering) {
            assert.equal(info.state, covering.kind === 'reserved' ? 'reserved' : 'assigned', text);
            assert.equal(info.cidr, covering.prefixLength === BITS[covering.family] ? covering.address : `${covering.address}/${covering.prefixLength}`, text);
          } else assert.ok(!['assigned', 'reserved'].includes(info.state), `${text}: ${info.state}`);
        }
        assert.equal((await describeAddress(tx, '10.70.10.77')).vif, 'a1:0');
        assert.equal((await describeAddress(tx, '10.50.0.10')).state, 'held');
        // A tenant sees an address of its own VIFs (inside its /22 too), not another tenant's.
        assert.equal((await showAddress(tx, '10.70.10.77', { tenant: 't1' })).state, 'assigned');
        await assert.rejects(showAddress(tx, '10.70.10.77', { tenant: 't2' }), (e: unknown) => e instanceof IpvisorError && e.code === 'NOT_FOUND');
        const b1addr = all.find((x) => x.family === 4 && x.kind !== 'routed' && x.vifUuid !== null && x.poolUuid === all.find((y) => y.address === '10.50.4.2')?.poolUuid)!;
        assert.equal((await showAddress(tx, b1addr.address, { tenant: 't2' })).state, 'assigned');
        await assert.rejects(showAddress(tx, b1addr.address, { tenant: 't1' }), (e: unknown) => e instanceof IpvisorError && e.code === 'NOT_FOUND');
      });
    });

    test('the newest events: ORDER BY id DESC LIMIT with actor, time and tenant filters equals the tail of the log', async () => {
      // Events by two more actors, spread in time, so the filters select something.
      const base = Date.parse('2031-06-01T00:00:00Z');
      await s.transaction(async (tx) => {
        for (let i = 0; i < 120; i++) {
          await tx.insertEvent({ time: new Date(base + i * 1000).toISOString(), actor: i % 3 ? 'user:ann' : 'token:ci', action: 'set', objectKind: 'note', objectUuid: null, objectName: `n${i}`, before: null, after: { i } });
        }
      }, { write: true });
      await s.transaction(async (tx) => {
        const all = await tx.listEvents();
        // The store: newest first, with the cursor bounds.
        assert.deepEqual(await tx.listEvents({ order: 'desc', limit: 7 }), all.slice(-7).reverse());
        const mid = all[Math.floor(all.length / 2)].id;
        assert.deepEqual(await tx.listEvents({ order: 'desc', beforeId: mid, limit: 3 }), all.filter((e) => e.id < mid).slice(-3).reverse());
        assert.deepEqual(await tx.listEvents({ actor: 'token:ci' }), all.filter((e) => e.actor === 'token:ci'));
        const since = new Date(base + 30_500).toISOString();
        const scopes = [{ tenant: null }, { tenant: 't1' }, { tenant: 't2' }];
        for (const scope of scopes) {
          const visible = await tenantEventFilter(tx, scope);
          for (const f of [{}, { actor: 'user:ann' }, { actor: 'test' }, { since }, { since, actor: 'token:ci' }, { actor: 'nobody' }]) {
            const want = all.filter((e) => (!visible || visible(e)) && (!('actor' in f) || e.actor === f.actor) && (!('since' in f) || e.time >= f.since!));
            for (const limit of [1, 5, 200, 100_000]) {
              const label = `${JSON.stringify(scope)} ${JSON.stringify(f)} limit ${limit}`;
              assert.deepEqual(await listEvents(tx, { ...f, limit }, scope), want.slice(-limit), label);
              const page = await eventsPage(tx, { ...f, limit }, scope);
              assert.deepEqual(page, { items: want.slice(0, limit), more: want.length > limit }, label);
              const after = want.length > 2 ? want[1].id : undefined;
              if (after !== undefined) assert.deepEqual((await eventsPage(tx, { ...f, limit, afterId: after }, scope)).items, want.filter((e) => e.id > after).slice(0, limit), `${label} after`);
            }
          }
          // An object's history with what hangs off it (relatedTo over the whole log, as before),
          // by name or UUID, with the actor, time and cursor filters, for each scope.
          const a2 = (await tx.findVmByName('a2'))!;
          for (const object of ['a1', a2.uuid, 'n', 'lan4', 'routed', 'printer', 'n7', 'missing']) {
            for (const f of [{}, { actor: 'test' }, { since: all[Math.floor(all.length / 3)].time }, { afterId: all[40].id }]) {
              const since = 'since' in f ? f.since : undefined;
              const afterId = 'afterId' in f ? f.afterId : undefined;
              const inRange = all.filter((e) => (!since || e.time >= since) && (afterId === undefined || e.id > afterId));
              const vm = (await tx.listVms()).find((v) => v.name === object || v.uuid === object);
              const net = vm ? undefined : (await tx.listNetworks()).find((n) => n.name === object || n.uuid === object);
              const pool = vm || net ? undefined : await tx.findPoolByName(object);
              const related = vm ? relatedTo(inRange, { kind: 'vm', uuid: vm.uuid, name: vm.name }) : net ? relatedTo(inRange, { kind: 'network', uuid: net.uuid, name: net.name }) : pool ? relatedTo(inRange, { kind: 'pool', uuid: pool.uuid, name: pool.name }) : [];
              const ids = new Set(related.map((e) => e.id));
              const want = inRange.filter((e) => (ids.has(e.id) || e.objectUuid === object || e.objectName === object) && (!('actor' in f) || e.actor === f.actor) && (!visible || visible(e)));
              const label = `${object} ${JSON.stringify(scope)} ${JSON.stringify(f)}`;
              assert.deepEqual(await listEvents(tx, { ...f, object }, scope), want, label);
              for (const limit of [1, 10]) {
                assert.deepEqual(await listEvents(tx, { ...f, object, limit }, scope), want.slice(-limit), `${label} limit ${limit}`);
                assert.deepEqual(await eventsPage(tx, { ...f, object, limit }, scope), { items: want.slice(0, limit), more: want.length > limit }, `${label} page ${limit}`);
              }
              if (object === 'a1' && scope.tenant !== 't2' && !('afterId' in f) && !('since' in f)) assert.ok(want.some((e) => e.objectKind === 'assignment') && want.some((e) => e.objectKind === 'vif'), "a VM's history includes its VIFs and addresses");
              if (object === 'lan4' && scope.tenant === null && Object.keys(f).length === 0) assert.ok(want.filter((e) => e.objectKind === 'assignment').length > 300, "a pool's history includes its addresses");
            }
          }
        }
        assert.equal((await listEvents(tx, { limit: 5 }, { tenant: 't2' })).every((e) => e.objectKind !== 'note'), true);
      });
    });
  });
}
