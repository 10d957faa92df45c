// The one rule for following a store with another identity (core/compile/store-switch.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideStoreSwitch } from '../../src/core/compile/store-switch.js';

const A = { storeId: 'aaaaaaaa-0000-4000-8000-000000000001', location: '/var/lib/ipvisor/ipvisor.db', since: '2026-11-01T00:00:00.000Z' };
const store = (id: string) => ({ id, location: '/var/lib/ipvisor/ipvisor.db' });
const add = { op: '+' as const, target: 'x' };
const del = { op: '-' as const, target: 'y' };
const chg = { op: '~' as const, target: 'z' };

test('nothing recorded: apply and record the store', () => {
  assert.deepEqual(decideStoreSwitch({ enforcedFrom: null, store: store('b'), changes: [add, del], force: false }), { allow: true, removals: [del], reason: null, record: true });
});

test('the same store: apply, nothing to say', () => {
  const d = decideStoreSwitch({ enforcedFrom: A, store: store(A.storeId), changes: [del, chg], force: false });
  assert.deepEqual([d.allow, d.reason, d.record, d.removals.length], [true, null, false, 2]);
});

test('another store that removes or changes something: refused without --force, applied with it', () => {
  const refused = decideStoreSwitch({ enforcedFrom: A, store: store('b'), changes: [add, del, chg], force: false });
  assert.equal(refused.allow, false);
  assert.equal(refused.record, false);
  assert.deepEqual(refused.removals, [del, chg]);
  assert.match(refused.reason!, /the store at \/var\/lib\/ipvisor\/ipvisor\.db \(identity b\) is not the store this host's enforcement came from \(identity aaaaaaaa-/);
  assert.match(refused.reason!, /2 thing\(s\).*refused without --force/);
  const forced = decideStoreSwitch({ enforcedFrom: A, store: store('b'), changes: [add, del], force: true });
  assert.deepEqual([forced.allow, forced.record], [true, true]);
  assert.match(forced.reason!, /--force: applying its 1 removal/);
});

test('another store that only adds: adopted (nothing the host enforces goes)', () => {
  const d = decideStoreSwitch({ enforcedFrom: A, store: store('b'), changes: [add], force: false });
  assert.deepEqual([d.allow, d.record, d.removals.length], [true, true, 0]);
  assert.match(d.reason!, /removes nothing, so it is adopted/);
});
