// `ipvisor store copy` SQLite -> PostgreSQL -> SQLite, and three CLI processes allocating from one
// pool on PostgreSQL at once. A real PostgreSQL (test/support/postgres.ts).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { cli, tempDb } from '../support/cli.js';
import { postgresSkip, startPostgres, type PostgresServer } from '../support/postgres.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';

const run = promisify(execFile);
const entry = new URL('../../src/cli/entry.ts', import.meta.url).pathname;

/** Everything a copy must carry, read through the Store port. */
async function contents(s: Store) {
  const pools = await s.listPools();
  return {
    identity: (await s.identity()).id,
    revision: await s.currentRevision(),
    changes: await s.changesSince(0, 1_000_000),
    networks: await s.listNetworks(),
    pools,
    vms: await s.listVms(),
    vifs: await s.listVifs(),
    assignments: await s.listAssignments(),
    events: await s.listEvents(),
    free: Object.fromEntries(await Promise.all(pools.map(async (p) => [p.name, (await s.freeIntervals(p.uuid)).map((f) => `${f.start}-${f.end}`)]))),
    holds: Object.fromEntries(await Promise.all(pools.map(async (p) => [p.name, await s.listHolds(p.uuid)]))),
    docs: await s.listDocs('test'),
  };
}

describe('store copy between SQLite and PostgreSQL', { skip: postgresSkip() }, () => {
  let pg: PostgresServer;
  const { db, cleanup } = tempDb();
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
    cleanup();
  });

  test('SQLite -> PostgreSQL -> SQLite keeps objects, free space, holds, audit log, revisions and identity; the copy works on', async () => {
    for (const args of [
      ['network', 'create', 'lan', '--subnet', '192.0.2.0/24,gateway=192.0.2.1', '--subnet', '2001:db8:1::/64'],
      ['pool', 'create', 'lan4', '--network', 'lan', '--cidr', '192.0.2.0/24', '--hold', '3600'],
      ['pool', 'create', 'lan6', '--network', 'lan', '--cidr', '2001:db8:1::/64'],
      ['vm', 'add', 'web1', '--host', 'hv1'],
      ['vif', 'add', 'web1', '--network', 'lan', '--mac', '52:54:00:00:00:01'],
      ['ip', 'allocate', '--vif', 'web1:0', '--family', '4'],
      ['ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--request-id', 'r1'],
      ['ip', 'allocate', '--vif', 'web1:0', '--family', '6'],
      ['ip', 'release', '192.0.2.3'],
      ['ip', 'reserve', '192.0.2.50', '--pool', 'lan4', '--note', 'printer'],
    ]) {
      const r = await cli(db, ...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const src = await openStore(db);
    await src.putDoc('test', 'k', { nested: { a: [1, 2] }, s: 'x' });
    const want = await contents(src);
    await src.close();
    assert.ok(want.revision >= 10 && want.events.length >= 9);
    assert.equal(Object.keys(want.holds).length, 2);

    const pgUrl = await pg.newDatabase();
    const c1 = await cli(db, 'store', 'copy', '--from', `sqlite:${db}`, '--to', pgUrl, '--json');
    assert.equal(c1.code, 0, c1.stderr);
    assert.equal(c1.json.identity, want.identity);
    assert.equal(c1.json.revision, want.revision);
    const onPg = await openStore(pgUrl);
    assert.deepEqual(await contents(onPg), want);
    await onPg.close();

    // A non-empty target is refused without --force, and nothing changes.
    const again = await cli(db, 'store', 'copy', '--from', `sqlite:${db}`, '--to', pgUrl, '--json');
    assert.equal(again.code, 2);
    assert.equal(again.error?.code, 'ALREADY_EXISTS');
    assert.equal(again.error?.field, 'to');

    // Work goes on on PostgreSQL: the next address, the next revision, the next event id.
    const next = await cli(pgUrl, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--json');
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.json.address, '192.0.2.4'); // .2 taken, .3 held for an hour
    const pgStore = await openStore(pgUrl);
    assert.equal(await pgStore.currentRevision(), want.revision + 1);
    const events = await pgStore.listEvents();
    assert.equal(events[events.length - 1].id, want.events[want.events.length - 1].id + 1);
    const afterPg = await contents(pgStore);
    await pgStore.close();

    // ... and back to a new SQLite file, with everything including the PostgreSQL-made change.
    const back = tempDb();
    try {
      const c2 = await cli(db, 'store', 'copy', '--from', pgUrl, '--to', `sqlite:${back.db}`, '--json');
      assert.equal(c2.code, 0, c2.stderr);
      const restored = await openStore(back.db);
      assert.deepEqual(await contents(restored), afterPg);
      await restored.close();
      // --force replaces a non-empty target: copy the original SQLite over it.
      const forced = await cli(db, 'store', 'copy', '--from', db, '--to', back.db, '--force', '--json');
      assert.equal(forced.code, 0, forced.stderr);
      const replaced = await openStore(back.db);
      assert.deepEqual(await contents(replaced), want);
      await replaced.close();
    } finally {
      back.cleanup();
    }
  });

  test('copy knows every table and column of both schemas (a new table or column must be added to COPY_TABLES)', async () => {
    const { COPY_TABLES } = await import('../../src/core/store/copy.js');
    const want = Object.fromEntries(COPY_TABLES.map((t) => [t.name, [...t.columns].sort()]));
    const skipTables = new Set(['meta']);
    const sq = tempDb();
    const s = await openStore(sq.db, { create: true });
    await s.close();
    const Database = (await import('better-sqlite3')).default;
    const raw = new Database(sq.db);
    const sqliteTables: Record<string, string[]> = {};
    for (const { name } of raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>) {
      if (skipTables.has(name)) continue;
      sqliteTables[name] = (raw.prepare(`PRAGMA table_info(${name})`).all() as Array<{ name: string }>).map((c) => c.name).sort();
    }
    raw.close();
    sq.cleanup();
    assert.deepEqual(sqliteTables, want);
    const url = await pg.newDatabase();
    const p = await openStore(url, { create: true });
    await p.close();
    const pgMod = (await import('pg')).default;
    const c = new pgMod.Client({ connectionString: url });
    await c.connect();
    const cols = (await c.query("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()")).rows as Array<{ table_name: string; column_name: string }>;
    await c.end();
    const pgTables: Record<string, string[]> = {};
    for (const r of cols) if (!skipTables.has(r.table_name)) (pgTables[r.table_name] ??= []).push(r.column_name);
    for (const k of Object.keys(pgTables)) pgTables[k].sort();
    assert.deepEqual(pgTables, want);
  });

  test('copying from a store that does not exist fails closed and creates nothing', async () => {
    const missing = tempDb();
    const pgUrl = await pg.newDatabase();
    const r = await cli(db, 'store', 'copy', '--from', missing.db, '--to', pgUrl, '--json');
    assert.equal(r.error?.code, 'STORE_MISSING');
    await assert.rejects(openStore(pgUrl), /STORE_MISSING|no ipvisor store/);
    missing.cleanup();
  });

  test('three CLI processes with --store postgresql://... allocating from one pool at once: no duplicates', async () => {
    const url = await pg.newDatabase();
    const env = { ...process.env, IPVISOR_STORE: url, IPVISOR_ACTOR: 't' };
    const ipv = (...args: string[]) => run(process.execPath, ['--import', 'tsx', entry, ...args], { env });
    await ipv('network', 'create', 'race', '--subnet', '10.5.0.0/24');
    await ipv('pool', 'create', 'race4', '--network', 'race', '--cidr', '10.5.0.0/24');
    for (const i of [1, 2, 3]) {
      await ipv('vm', 'add', `c${i}`, '--host', 'hv1');
      await ipv('vif', 'add', `c${i}`, '--network', 'race', '--mac', `52:54:00:05:00:0${i}`);
    }
    const worker = async (i: number) => {
      const got: string[] = [];
      for (let k = 0; k < 4; k++) got.push(JSON.parse((await ipv('--store', url, 'ip', 'allocate', '--vif', `c${i}:0`, '--json')).stdout).address);
      return got;
    };
    const all = (await Promise.all([1, 2, 3].map(worker))).flat();
    assert.equal(all.length, 12);
    assert.equal(new Set(all).size, 12, `duplicates in ${all.join(' ')}`);
    const s = await openStore(url);
    assert.equal((await s.listAssignments()).length, 12);
    await s.close();
  });
});
