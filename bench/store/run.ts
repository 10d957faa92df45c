// Store benchmark (not a test): committed allocations per second through the store (the service's
// allocate(): hold reclaim, free-space update, assignment row, audit row, change row) on PostgreSQL
// with 1, 8 and 32 concurrent clients, next to raw PostgreSQL INSERT transactions on the same server
// and to SQLite; and SQLite at synchronous=FULL next to a raw two-row commit on the same disk.
// Figures compared with each other are measured in turns (see SLICE_MS).
// Run: node --import tsx bench/store/run.ts [--seconds S]   (needs root and Debian's postgresql)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { PgStore } from '../../src/core/store/postgres/pg-store.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { allocate } from '../../src/core/service/ip.js';
import { startPostgres } from '../../test/support/postgres.js';

const argSeconds = process.argv.indexOf('--seconds');
const SECONDS = argSeconds > 0 ? Number(process.argv[argSeconds + 1]) : 4;
const CLIENTS = [1, 8, 32];
/** Each figure is measured in slices of this length, taking turns with the figures it is compared
 * with, so that all of them see the same disk: fsync latency on a shared machine drifts by a factor
 * of several within seconds, and figures taken one after the other compared that drift. */
const SLICE_MS = 500;
const dir = mkdtempSync(join(tmpdir(), 'ipvisor-bench-store-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

type Op = (client: number) => Promise<unknown>;

/** Runs `clients` loops of `op` for `ms`; returns the operations completed and the time taken. */
async function slice(clients: number, op: Op, ms: number): Promise<{ done: number; ms: number }> {
  const t0 = performance.now();
  const stopAt = t0 + ms;
  let done = 0;
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    while (performance.now() < stopAt) {
      await op(c);
      done++;
    }
  }));
  return { done, ms: performance.now() - t0 };
}

/** Operations per second of each of `ops` with `clients` concurrent loops, SECONDS each, measured
 * in turns of SLICE_MS after one uncounted operation per client. */
async function rates(clients: number, ops: Op[]): Promise<number[]> {
  // Warm-up, not counted: every client's connection opened and its statements prepared.
  for (const op of ops) await Promise.all(Array.from({ length: clients }, (_, c) => op(c)));
  const done = ops.map(() => 0);
  const ms = ops.map(() => 0);
  for (let round = 0; round < Math.max(1, Math.round((SECONDS * 1000) / SLICE_MS)); round++) {
    for (const [i, op] of ops.entries()) {
      const r = await slice(clients, op, SLICE_MS);
      done[i] += r.done;
      ms[i] += r.ms;
    }
  }
  return done.map((d, i) => d / (ms[i] / 1000));
}

/** One network, one /8 pool per `pools` (1: every client on one pool), one VIF per client. */
async function seed(store: Store, clients: number, pools: number): Promise<void> {
  await createNetwork(store, { name: 'n', subnets: ['10.0.0.0/8'] }, 'bench');
  for (let p = 0; p < pools; p++) await createPool(store, { name: `p${p}`, network: 'n', cidrs: [`10.${p}.0.0/16`] }, 'bench');
  for (let c = 0; c < clients; c++) {
    await createVm(store, { name: `vm${c}` }, 'bench');
    await addVif(store, { vm: `vm${c}`, network: 'n', mac: `52:54:00:00:${(c >> 8).toString(16).padStart(2, '0')}:${(c & 255).toString(16).padStart(2, '0')}` }, 'bench');
  }
}

const row = (what: string, figures: Record<string, number | string>) => ({ what, ...figures });
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

console.log(`ipvisor store benchmark  (node ${process.version}, ${SECONDS} s per figure in turns of ${SLICE_MS} ms with the figures beside it, load average ${(await import('node:os')).loadavg()[0].toFixed(1)})\n`);

// ---- PostgreSQL: a durable server (fsync and synchronous_commit on), Unix socket
const server = await startPostgres({ durable: true, maxConnections: 200 });
try {
  const table: Array<Record<string, unknown>> = [];
  const ratios: Array<Record<string, unknown>> = [];
  const doc = 'x'.repeat(300);
  for (const clients of CLIENTS) {
    // Three databases on the one server, measured in turns: the store with every client on one
    // pool, the store with a pool per client, and the alternative, raw INSERT transactions of two
    // rows (an assignment-sized row and an event-sized row).
    const stores: Store[] = [];
    for (const pools of [1, clients]) {
      const store = await PgStore.open(await server.newDatabase(), { create: true, max: clients });
      await seed(store, clients, pools);
      stores.push(store);
    }
    const p = new pg.Pool({ connectionString: await server.newDatabase(), max: clients });
    await p.query('CREATE TABLE a (id bigserial PRIMARY KEY, k text, doc text)');
    await p.query('CREATE TABLE e (id bigserial PRIMARY KEY, doc text)');
    const raw: Op = async () => {
      const c = await p.connect();
      try {
        await c.query('BEGIN');
        await c.query({ name: 'ia', text: 'INSERT INTO a (k, doc) VALUES ($1, $2)', values: [String(Math.random()), doc] });
        await c.query({ name: 'ie', text: 'INSERT INTO e (doc) VALUES ($1)', values: [doc] });
        await c.query('COMMIT');
      } finally {
        c.release();
      }
    };
    const [onePool, perClient, rawPerS] = await rates(clients, [
      (c) => allocate(stores[0], { vif: `vm${c}:0`, pool: 'p0' }, 'bench'),
      (c) => allocate(stores[1], { vif: `vm${c}:0`, pool: `p${c}` }, 'bench'),
      raw,
    ]);
    for (const s of stores) await s.close();
    await p.end();
    table.push(row('PostgreSQL store, one pool', { clients, per_s: fmt(onePool) }));
    table.push(row('PostgreSQL store, pool per client', { clients, per_s: fmt(perClient) }));
    table.push(row('raw PostgreSQL two-row INSERT transaction', { clients, per_s: fmt(rawPerS) }));
    ratios.push({ clients, 'one pool': `${((100 * onePool) / rawPerS).toFixed(0)} %`, 'pool per client': `${((100 * perClient) / rawPerS).toFixed(0)} %` });
  }
  console.log('committed allocations per second on PostgreSQL (durable: fsync on, synchronous_commit on)');
  console.table(table);
  console.log('ratio of the store to raw INSERT transactions');
  console.table(ratios);
} finally {
  await server.stop();
}

// ---- SQLite: one process (SQLite has one writer at a time), synchronous NORMAL and FULL
const sqlite: Array<Record<string, unknown>> = [];
for (const sync of ['NORMAL', 'FULL'] as const) {
  const path = join(dir, `s-${sync}.db`);
  const store = await openStore(path, { create: true, synchronous: sync });
  await seed(store, 1, 1);
  // The alternative: a raw commit of two rows on the same disk, same settings, taking turns.
  const rawPath = join(dir, `raw-${sync}.db`);
  const raw = new Database(rawPath);
  raw.pragma('journal_mode = WAL');
  raw.pragma(`synchronous = ${sync}`);
  raw.pragma('wal_autocheckpoint = 10000');
  raw.exec('CREATE TABLE a (id INTEGER PRIMARY KEY, k TEXT, doc TEXT); CREATE TABLE e (id INTEGER PRIMARY KEY, doc TEXT)');
  const ia = raw.prepare('INSERT INTO a (k, doc) VALUES (?, ?)');
  const ie = raw.prepare('INSERT INTO e (doc) VALUES (?)');
  const doc = 'x'.repeat(300);
  const [perS, rawPerS] = await rates(1, [
    () => allocate(store, { vif: 'vm0:0' }, 'bench'),
    async () => {
      raw.exec('BEGIN IMMEDIATE');
      ia.run(String(Math.random()), doc);
      ie.run(doc);
      raw.exec('COMMIT');
    },
  ]);
  await store.close();
  raw.close();
  sqlite.push({ synchronous: sync, store_per_s: fmt(perS), raw_two_row_commit_per_s: fmt(rawPerS), ratio: `${((100 * perS) / rawPerS).toFixed(0)} %` });
}
console.log('\ncommitted allocations per second on SQLite (WAL, one process) next to a raw two-row commit');
console.table(sqlite);
