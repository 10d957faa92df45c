// The store suite, run on SQLite and on a real PostgreSQL (test/support/backends.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore, parseStoreUrl } from '../../src/core/store/open.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { createVm, addVif } from '../../src/core/service/vms.js';
import { allocate, release } from '../../src/core/service/ip.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { SCHEMA_VERSION } from '../../src/core/store/sqlite/migrations.js';
import { PG_SCHEMA_VERSION } from '../../src/core/store/postgres/migrations.js';
import { storeBackends } from '../support/backends.js';
import { notApplicable } from '../support/skip.js';

const run = promisify(execFile);

/** Runs one statement on the store's database, under the store's back. */
async function rawExec(url: string, sql: string, params: unknown[] = []): Promise<void> {
  const where = parseStoreUrl(url);
  if (where.kind === 'sqlite') {
    const raw = new Database(where.path);
    raw.prepare(sql.replace(/\$\d+/g, '?')).run(...params);
    raw.close();
    return;
  }
  const c = new pg.Client({ connectionString: where.url });
  await c.connect();
  try {
    await c.query(sql, params);
  } finally {
    await c.end();
  }
}

for (const backend of storeBackends()) {
  describe(`store (${backend.name})`, { skip: backend.skip }, () => {
    let db: string;
    before(async () => {
      await backend.setup();
      db = await backend.newUrl();
    });
    after(() => backend.teardown());

    test('refuses a store from a newer ipvisor', async () => {
      const s = await openStore(db, { create: true });
      await s.close();
      if (backend.name === 'sqlite') {
        const raw = new Database(parseStoreUrl(db).kind === 'sqlite' ? (parseStoreUrl(db) as { path: string }).path : '');
        assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
        raw.close();
      }
      await rawExec(db, "UPDATE meta SET value = '999' WHERE key = 'schema_version'");
      await assert.rejects(openStore(db, { create: true }), (e: unknown) => e instanceof IpvisorError && e.code === 'STORE_SCHEMA');
      await rawExec(db, "UPDATE meta SET value = $1 WHERE key = 'schema_version'", [String(backend.name === 'sqlite' ? SCHEMA_VERSION : PG_SCHEMA_VERSION)]);
    });

    test('opening without create: an empty database is STORE_MISSING; created, it has an identity that stays', async () => {
      const url = await backend.newUrl();
      await assert.rejects(openStore(url), (e: unknown) => e instanceof IpvisorError && e.code === 'STORE_MISSING');
      const s = await openStore(url, { create: true });
      const id = await s.identity();
      assert.match(id.id, /^[0-9a-f-]{36}$/);
      await s.close();
      const again = await openStore(url);
      assert.equal((await again.identity()).id, id.id);
      await again.close();
    });

    test('events since a time: the first one at or after it', async () => {
      const s = await openStore(db, { create: true });
      const base = Date.parse('2030-01-01T00:00:00Z');
      for (let i = 0; i < 37; i++) {
        await s.insertEvent({ time: new Date(base + i * 60_000).toISOString(), actor: 't', action: 'x', objectKind: 'k', objectUuid: null, objectName: `e${i}`, before: null, after: { i } });
      }
      for (const i of [0, 1, 17, 36]) {
        const got = await s.listEvents({ since: new Date(base + i * 60_000).toISOString() });
        assert.equal(got.length, 37 - i);
        assert.equal(got[0].objectName, `e${i}`);
        assert.deepEqual(got[0].after, { i });
      }
      const between = await s.listEvents({ since: new Date(base + 5 * 60_000 + 1).toISOString() });
      assert.equal(between[0].objectName, 'e6');
      assert.equal((await s.listEvents({ since: '2031-01-01T00:00:00Z' })).length, 0);
      assert.equal((await s.listEvents({ object: 'e3' })).length, 1);
      assert.equal((await s.listEvents({ limit: 5 })).length, 5);
      await s.close();
    });

    test('a failed transaction leaves nothing behind, and its tx object is dead afterwards', async () => {
      const s = await openStore(db, { create: true });
      let leaked: { putDoc(k: string, key: string, v: unknown): Promise<void> } | undefined;
      await assert.rejects(s.transaction(async (tx) => {
        leaked = tx;
        await tx.putDoc('test', 'k', { a: 1 });
        throw new Error('boom');
      }, { write: true }));
      assert.equal(await s.getDoc('test', 'k'), undefined);
      await assert.rejects(leaked!.putDoc('test', 'k', 1), /after it ended/);
      await s.close();
    });

    test('the database enforces unique pool+address even if the allocator were bypassed', async () => {
      const s = await openStore(db, { create: true });
      const n = await createNetwork(s, { name: 'u', subnets: ['10.1.0.0/24'] }, 't');
      const p = await createPool(s, { name: 'u4', network: 'u', cidrs: ['10.1.0.0/24'] }, 't');
      await createVm(s, { name: 'uvm' }, 't');
      await addVif(s, { vm: 'uvm', network: 'u', mac: '52:54:00:01:00:01' }, 't');
      const a = (await allocate(s, { vif: 'uvm:0' }, 't')).assignment;
      await assert.rejects(s.insertAssignment({ ...a, uuid: crypto.randomUUID() }), /UNIQUE|duplicate key/);
      assert.equal(n.uuid, p.networkUuid);
      await s.close();
    });

    test('three processes allocating from one pool at once never hand out the same address', async () => {
      const s = await openStore(db, { create: true });
      await createNetwork(s, { name: 'race', subnets: ['10.2.0.0/16'] }, 't');
      await createPool(s, { name: 'race4', network: 'race', cidrs: ['10.2.0.0/16'] }, 't');
      for (const i of [1, 2, 3]) {
        await createVm(s, { name: `r${i}` }, 't');
        await addVif(s, { vm: `r${i}`, network: 'race', mac: `52:54:00:02:00:0${i}` }, 't');
      }
      await s.close();
      const worker = new URL('../support/alloc-worker.ts', import.meta.url).pathname;
      const outs = await Promise.all(['r1:0', 'r2:0', 'r3:0'].map((vif) => run(process.execPath, ['--import', 'tsx', worker, db, vif, '200'])));
      const all = outs.flatMap((o) => JSON.parse(o.stdout).addresses as string[]);
      assert.equal(all.length, 600);
      assert.equal(new Set(all).size, 600, 'no duplicates');
      const s2 = await openStore(db, { create: true });
      const pool = await s2.findPoolByName('race4');
      assert.equal((await s2.listAssignments({ poolUuid: pool!.uuid })).length, 600);
      // The lowest 600 usable addresses were used: no gap, no double.
      const free = await s2.lowestFree(pool!.uuid);
      assert.equal(free!.start, (10n << 24n) + (2n << 16n) + 601n);
      await s2.close();
    });

    test('the lowest free address in one call: keys carry over hex digits, the primary flag is read after the take, due holds come back first', async () => {
      const s = await openStore(db, { create: true });
      await createNetwork(s, { name: 'carry', subnets: ['10.3.0.0/16'] }, 't');
      const pool = await createPool(s, { name: 'carry4', network: 'carry', cidrs: ['10.3.0.0/16'] }, 't');
      await createVm(s, { name: 'cvm' }, 't');
      await addVif(s, { vm: 'cvm', network: 'carry', mac: '52:54:00:03:00:01' }, 't');
      const now = new Date().toISOString();
      // The store's key arithmetic (PostgreSQL: ipvisor_key_succ on hex text), in a transaction
      // that is rolled back: intervals starting at ...0f, ...ff and 2^64-1 give up their lowest key.
      const base = (10n << 24n) + (3n << 16n);
      const taken: bigint[] = [];
      await assert.rejects(s.transaction(async (tx) => {
        await tx.clearFree(pool.uuid);
        for (const [start, end] of [[base + 0x0fn, base + 0x10n], [base + 0xffn, base + 0x101n], [(1n << 64n) - 1n, 1n << 64n]]) {
          await tx.insertFree({ poolUuid: pool.uuid, start, end });
        }
        for (;;) {
          const t = await tx.takeLowestFree(pool.uuid, now);
          if (t === undefined) break;
          assert.notEqual(t, 'expired-holds');
          if (t !== 'expired-holds') taken.push(t.start);
        }
        throw new Error('roll back');
      }, { write: true }), /roll back/);
      assert.deepEqual(taken, [0x0fn, 0x10n, 0xffn, 0x100n, 0x101n].map((k) => base + k).concat([(1n << 64n) - 1n, 1n << 64n]));
      assert.equal((await s.lowestFree(pool.uuid))!.start, base + 1n, 'the rollback left the free space as it was');

      // primary, then additional: whether the VIF holds an address is read with the pool locked
      const a1 = (await allocate(s, { vif: 'cvm:0' }, 't')).assignment;
      const a2 = (await allocate(s, { vif: 'cvm:0' }, 't')).assignment;
      const a3 = (await allocate(s, { vif: 'cvm:0' }, 't')).assignment;
      assert.deepEqual([a1, a2, a3].map((a) => [a.address, a.kind]), [['10.3.0.1', 'primary'], ['10.3.0.2', 'additional'], ['10.3.0.3', 'additional']]);

      // 10.3.0.3 released into a hold that is already due: the one-call path changes nothing and
      // says so; allocate() then reclaims the hold and hands out 10.3.0.3 again.
      await s.transaction(async (tx) => {
        await tx.deleteAssignment(a3.uuid);
        await tx.insertHold({ poolUuid: pool.uuid, start: base + 3n, end: base + 3n, until: '2000-01-01T00:00:00.000Z' });
      }, { write: true });
      assert.equal(await s.transaction((tx) => tx.takeLowestFree(pool.uuid, now), { write: true }), 'expired-holds');
      assert.equal((await s.lowestFree(pool.uuid))!.start, base + 4n);
      const again = (await allocate(s, { vif: 'cvm:0' }, 't')).assignment;
      assert.deepEqual([again.address, again.kind], ['10.3.0.3', 'additional']);
      assert.deepEqual(await s.listHolds(pool.uuid), []);
      assert.equal((await s.lowestFree(pool.uuid))!.start, base + 4n);

      // The VIF and a named pool are read together (pipelined on PostgreSQL): a missing VM is still
      // the error when both are missing, and the store goes on afterwards.
      await assert.rejects(allocate(s, { vif: 'nosuchvm:0', pool: 'nosuchpool' }, 't'), (e: IpvisorError) => e.code === 'NOT_FOUND' && /nosuchvm/.test(e.message));
      await assert.rejects(allocate(s, { vif: 'cvm:0', pool: 'nosuchpool' }, 't'), (e: IpvisorError) => e.code === 'NOT_FOUND' && /nosuchpool/.test(e.message));
      assert.equal((await allocate(s, { vif: 'cvm:0', pool: 'carry4' }, 't')).assignment.address, '10.3.0.4');
      await s.close();
    });

    test('a /8 IPv4 pool and a /64 IPv6 pool allocate, release and report usage without walking addresses', async () => {
      const s = await openStore(db, { create: true });
      await createNetwork(s, { name: 'big', subnets: ['11.0.0.0/8', 'fd00:1::/64'] }, 't');
      await createPool(s, { name: 'big4', network: 'big', cidrs: ['11.0.0.0/8'] }, 't');
      await createPool(s, { name: 'big6', network: 'big', cidrs: ['fd00:1::/64'], exclude: ['fd00:1::/120'] }, 't');
      await createVm(s, { name: 'bigvm' }, 't');
      await addVif(s, { vm: 'bigvm', network: 'big', mac: '52:54:00:03:00:01' }, 't');
      const a4 = await allocate(s, { vif: 'bigvm:0', family: 4 }, 't');
      const a6 = await allocate(s, { vif: 'bigvm:0', family: 6 }, 't');
      const high = await allocate(s, { vif: 'bigvm:0', address: 'fd00:1::ffff:ffff:ffff:fffe' }, 't');
      assert.equal(a4.assignment.address, '11.0.0.1');
      assert.equal(a6.assignment.address, 'fd00:1::100');
      assert.equal(high.assignment.kind, 'additional');
      await release(s, { address: 'fd00:1::ffff:ffff:ffff:fffe' }, 't');
      const { poolUsage } = await import('../../src/core/service/pools.js');
      const p6 = (await s.findPoolByName('big6'))!;
      const usage = await s.transaction(async (tx) => poolUsage(tx, p6, (await tx.getNetwork(p6.networkUuid))!));
      assert.equal(usage.total, ((1n << 64n) - 256n).toString());
      assert.equal(usage.free, ((1n << 64n) - 257n).toString());
      await s.close();
    });

    test('every committed write transaction takes the next revision; rollbacks and reads take none', async () => {
      const url = await backend.newUrl();
      const s = await openStore(url, { create: true });
      const seen: number[] = [];
      const stop = s.watch((r) => seen.push(r));
      const r0 = await s.currentRevision();
      assert.equal(r0, 0);
      await createNetwork(s, { name: 'feed', subnets: ['10.9.0.0/24'] }, 't');
      await createPool(s, { name: 'feed4', network: 'feed', cidrs: ['10.9.0.0/24'] }, 't');
      await createVm(s, { name: 'fvm', host: 'hv7' }, 't');
      await addVif(s, { vm: 'fvm', network: 'feed', mac: '52:54:00:09:00:01' }, 't');
      const before = await s.currentRevision();
      assert.equal(before, 4);
      await assert.rejects(s.transaction(async (tx) => { await tx.putDoc('x', 'y', 1); throw new Error('no'); }, { write: true }));
      await s.listNetworks();
      assert.equal(await s.currentRevision(), before);
      const a = (await allocate(s, { vif: 'fvm:0' }, 't')).assignment;
      assert.equal(await s.currentRevision(), before + 1);
      const changes = await s.changesSince(before);
      assert.deepEqual(changes.map((c) => [c.revision, c.kind, c.key, c.host]), [[before + 1, 'assignment', a.uuid, 'hv7']]);
      // The VIF's change names its VM's host; the whole feed is in revision order.
      const all = await s.changesSince(0);
      assert.ok(all.some((c) => c.kind === 'vif' && c.host === 'hv7'));
      assert.deepEqual(all.map((c) => c.revision), [...all.map((c) => c.revision)].sort((x, y) => x - y));
      // A limit cuts at a whole revision.
      assert.deepEqual((await s.changesSince(0, 2)).map((c) => c.revision), [1, 2].slice(0, (await s.changesSince(0, 2)).length));
      await release(s, { address: a.address }, 't');
      const rel = await s.changesSince(before + 1);
      assert.deepEqual(rel.map((c) => [c.kind, c.key, c.host]), [['assignment', a.uuid, 'hv7']]);
      // Our own commits are announced at once (PostgreSQL may add its NOTIFY echo: same revisions).
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual([...new Set(seen)].filter((r) => r > r0), [1, 2, 3, 4, before + 1, before + 2]);
      stop();
      await s.close();
    });

    test('a watcher learns of another process\'s commit', async () => {
      const s = await openStore(db, { create: true });
      const start = await s.currentRevision();
      let stop = () => {};
      const got = new Promise<number>((resolve) => { stop = s.watch((r) => { if (r > start) resolve(r); }); });
      // Give the PostgreSQL listener its connection before the other process commits.
      await new Promise((r) => setTimeout(r, 300));
      await run(process.execPath, ['--import', 'tsx', '-e', `
        const { openStore } = await import(${JSON.stringify(new URL('../../src/core/store/open.ts', import.meta.url).pathname)});
        const o = await openStore(${JSON.stringify(db)}, { create: true });
        await o.putDoc('t', 'k', { v: 1 });
        await o.close();`]);
      assert.equal(await got, start + 1);
      stop();
      await s.close();
    });

    test('a revision that commits after a later one is not skipped by a reader of the feed', { skip: notApplicable(backend.name !== 'postgres' && 'PostgreSQL only: SQLite writers are serial') }, async () => {
      const s = await openStore(db, { create: true });
      const start = await s.currentRevision();
      // A writer that took revision start+1 and has not committed yet (what pg-store's commit tail does).
      const slow = new pg.Client({ connectionString: (parseStoreUrl(db) as { url: string }).url });
      await slow.connect();
      await slow.query('BEGIN');
      await slow.query('SELECT pg_advisory_xact_lock_shared(4, 0)');
      const mine = Number((await slow.query("SELECT nextval('revision_seq') AS r")).rows[0].r);
      await slow.query("INSERT INTO changes (revision, seq, kind, key) VALUES ($1, 1, 'doc:slow', 'k')", [mine]);
      // A later writer commits start+2 first.
      await s.putDoc('fast', 'k', 1);
      const reading = s.changesSince(start);
      let settled = false;
      void reading.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(settled, false, 'the reader waits for the revision still in flight');
      await slow.query('COMMIT');
      await slow.end();
      const got = await reading;
      assert.deepEqual(got.map((c) => [c.revision, c.kind]), [[start + 1, 'doc:slow'], [start + 2, 'doc:fast']]);
      await s.close();
    });

    test('a concurrent transaction sees the other one\'s revision order: revisions follow commit order', async () => {
      const s = await openStore(db, { create: true });
      const start = await s.currentRevision();
      await Promise.all(Array.from({ length: 20 }, (_, i) => s.putDoc('conc', `k${i}`, i)));
      const got = await s.changesSince(start);
      assert.equal(got.length, 20);
      assert.deepEqual(got.map((c) => c.revision), Array.from({ length: 20 }, (_, i) => start + 1 + i));
      await s.close();
    });
  });
}
