// ipvisor check [--repair]: a damaged free-space index (rows deleted) is found, exit 1, and rebuilt
// by --repair, after which the pool hands out addresses again (it reported POOL_EXHAUSTED).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { cli, tempDb } from '../support/cli.js';

const { db, cleanup } = tempDb();
after(cleanup);

test('check: healthy, then a deleted free-space row is damage; --repair rebuilds it', async () => {
  for (const args of [
    ['network', 'create', 'chk', '--subnet', '192.0.2.0/24,gateway=192.0.2.1'],
    ['pool', 'create', 'chk4', '--network', 'chk', '--cidr', '192.0.2.0/24'],
    ['vm', 'add', 'c1'],
    ['vif', 'add', 'c1', '--network', 'chk', '--mac', '52:54:00:cc:00:01'],
    ['ip', 'allocate', '--vif', 'c1:0', '--family', '4'],
  ]) assert.equal((await cli(db, ...args)).code, 0, args.join(' '));
  const ok = await cli(db, '--json', 'check');
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.deepEqual([ok.json.healthy, ok.json.problems, ok.json.pools], [true, [], 1]);

  // what a bad restore or a hand edit leaves: the index lost its rows
  const raw = new Database(db);
  raw.exec('DELETE FROM free_space');
  raw.close();
  const exhausted = await cli(db, '--json', 'ip', 'allocate', '--vif', 'c1:0', '--family', '4');
  assert.equal(exhausted.error?.code, 'POOL_EXHAUSTED', 'a half-empty pool looks full');

  const bad = await cli(db, 'check');
  assert.equal(bad.code, 1, bad.stdout);
  assert.match(bad.stdout, /^damage: free-space: pool chk4: the free-space index \(0 interval\(s\): none\) is not what its ranges, assignments and holds imply \(1: 192\.0\.2\.3-192\.0\.2\.254\)/m);
  assert.match(bad.stdout, /damage found: 1 problem/);

  const fixed = await cli(db, '--json', 'check', '--repair');
  assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
  assert.equal(fixed.json.problems[0].repaired, true);
  assert.equal((await cli(db, 'check')).code, 0);
  const again = await cli(db, '--json', 'ip', 'allocate', '--vif', 'c1:0', '--family', '4');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json.assignment?.address ?? again.json.address, '192.0.2.3');
});

test('check: an orphan row (an assignment whose VIF is gone) is damage', async () => {
  const raw = new Database(db);
  raw.pragma('foreign_keys = OFF');
  raw.exec("DELETE FROM vifs");
  raw.close();
  const r = await cli(db, '--json', 'check');
  assert.equal(r.code, 1);
  assert.ok(r.json.problems.some((p: { kind: string; message: string }) => p.kind === 'orphan' && /belongs to VIF .* which does not exist/.test(p.message)), JSON.stringify(r.json));
});

test('check never creates a store', async () => {
  const r = await cli(`${db}.typo`, '--json', 'check');
  assert.equal(r.error?.code, 'STORE_MISSING');
});
