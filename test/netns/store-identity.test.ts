// A store with another identity than the one the host's enforcement came from (a recreated or a
// different file at the same path) never silently removes what the host enforces: plan shows the
// removals and why, apply and serve refuse them without --force; serve follows a store file
// replaced under it (a backup restored with mv). Root only; namespaces removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { cliInEnv as cli } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import { serve } from '../../src/daemon/serve.js';
import { assign, network, seedRoutedVif } from '../compile/fixtures.js';
import { Topology, netnsSkipReason, useHostEnv } from '../support/netns.js';
import type { VmNs } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { until as untilWithin } from '../support/until.js';

guardRootNamespace();

const skip = await netnsSkipReason();

/** This file's waits give up after 15 s. */
const until = (what: string, fn: () => Promise<boolean>, ms = 15_000) => untilWithin(what, fn, ms);

describe('store identity: a different store never silently opens the host', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-ident-'));
  const db = join(dir, 'db.sqlite');
  let vm1: VmNs;
  let restoreEnv = () => {};

  /** A consistent copy of a store (WAL included), like a backup. */
  const backup = (from: string, to: string) => {
    const raw = new Database(from, { readonly: true });
    raw.exec(`VACUUM INTO '${to}'`);
    raw.close();
  };
  const vifIp4 = () => topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'vif_ip4']);
  const enforces = async (address: string) => (await vifIp4()).includes(`"${vm1.vif}" . ${address}`);
  const routed = async () => (await topo.inHost(['ip', 'route', 'show', 'proto', '250'])).includes('203.0.113.71');

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    vm1 = await topo.addVm('i1', '52:54:00:ee:10:01', { addresses: ['10.71.0.10/24'] });
    const store = await openStore(db, { create: true });
    const net = network({ name: 'idn', bridge: topo.bridge, mode: 'routed', subnets: [{ cidr: '10.71.0.0/24', family: 4, gateway: '10.71.0.1' }] });
    await seedRoutedVif(store, net, { vm: 'i', mac: vm1.mac, ifname: vm1.vif, address: '10.71.0.10', routed: '203.0.113.71' });
    await store.close();
    const r = await cli(['apply']);
    assert.equal(r.code, 0, r.err);
    assert.ok(await enforces('10.71.0.10'));
    assert.equal(JSON.parse(readFileSync(join(dir, 'enforced-store.json'), 'utf8')).location, db, 'the host recorded where its state came from');
  });

  after(async () => {
    try {
      await cli(['teardown']);
      await topo.destroy();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      restoreEnv();
    }
  });

  test('a recreated store: plan lists the removals and says why; apply refuses and the host keeps them; --force applies', async () => {
    renameSync(db, join(dir, 'a.sqlite'));
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    assert.equal((await cli(['init'])).code, 0, 'an empty store at the same path');

    const plan = await cli(['plan', '--json']);
    assert.equal(plan.code, 0, plan.err);
    const result = JSON.parse(plan.out);
    assert.ok(result.changes.some((c: { op: string; target: string }) => c.op === '-' && c.target.includes(`"${vm1.vif}" . 10.71.0.10`)), plan.out);
    assert.ok(result.warnings.some((w: string) => /is not the store this host's enforcement came from/.test(w) && /refused without --force/.test(w)), plan.err);

    const apply = await cli(['apply', '--json']);
    assert.equal(apply.code, 1, apply.out);
    const err = JSON.parse(apply.out).errors.find((e: { enforcer: string }) => e.enforcer === 'host');
    assert.equal(err.code, 'STORE_IDENTITY');
    assert.match(err.message, /Removals: - /);
    assert.ok(await enforces('10.71.0.10'), 'the host still enforces the VIF');
    assert.ok(await routed(), 'and routes its address');

    // the right store back (same identity): nothing to refuse
    rmSync(db);
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    renameSync(join(dir, 'a.sqlite'), db);
    const back = await cli(['apply']);
    assert.equal(back.code, 0, back.err);
    assert.doesNotMatch(back.err, /not the store/);

    // --force takes the other store's word for it
    renameSync(db, join(dir, 'a.sqlite'));
    assert.equal((await cli(['init'])).code, 0);
    const forced = await cli(['apply', '--force']);
    assert.equal(forced.code, 0, forced.err);
    assert.match(forced.err, /--force: applying its \d+ removal\(s\)/);
    assert.equal(await enforces('10.71.0.10'), false);
    assert.equal(await routed(), false);

    // and a store that only adds is adopted without --force
    rmSync(db);
    rmSync(`${db}-wal`, { force: true });
    rmSync(`${db}-shm`, { force: true });
    renameSync(join(dir, 'a.sqlite'), db);
    const adopt = await cli(['apply']);
    assert.equal(adopt.code, 0, adopt.err);
    assert.ok(await enforces('10.71.0.10'));
  });

  test('serve reopens a store file restored with mv, and refuses a different one while keeping what it enforces', async () => {
    backup(db, join(dir, 'backup.sqlite'));
    const ac = new AbortController();
    const logs: string[] = [];
    const store = await openStore(db);
    const running = serve({
      store,
      reopen: () => openStore(db),
      log: (m) => logs.push(m),
      signal: ac.signal,
      // the host side as `ipvisor serve` runs it: an in-process agent on the store's control plane
      agent: true,
      enforcers: [],
      watchers: [],
      intervalMs: 200,
      debounceMs: 10,
    });
    try {
      // a change made while serve runs reaches the host
      const w = await openStore(db);
      const p4 = (await w.listPools()).find((p) => p.purpose === 'vif')!;
      const f = (await w.listVifs())[0];
      await w.insertAssignment(assign(f, p4, '10.71.0.11', { kind: 'additional' }));
      await w.close();
      await until('the new address enforced', () => enforces('10.71.0.11'));

      // restore yesterday's backup over the store: serve follows it, the address goes again
      renameSync(join(dir, 'backup.sqlite'), db);
      await until('the restored state enforced', async () => !(await enforces('10.71.0.11'))).catch((e) => { throw new Error(`${e.message}\n${logs.join('\n')}`); });
      assert.ok(logs.some((l) => /was replaced on disk; reopened it/.test(l)), logs.join('\n'));
      assert.ok(await enforces('10.71.0.10'));

      // a different store moved in: refused, said once, and the host keeps what it enforces
      const other = join(dir, 'other.sqlite');
      assert.equal((await cli(['--db', other, 'init'])).code, 0);
      renameSync(other, db);
      await until('the refusal logged', async () => logs.some((l) => /is not the store this host's enforcement came from/.test(l))).catch((e) => {
        throw new Error(`${e.message}\n${logs.join('\n')}`);
      });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(logs.filter((l) => /is not the store this host's enforcement came from/.test(l)).length, 1, `said once, not every interval:\n${logs.join('\n')}`);
      assert.ok(await enforces('10.71.0.10'), 'still enforced');
      assert.ok(await routed());
    } finally {
      ac.abort();
      await running;
      await store.close();
    }
  });
});
