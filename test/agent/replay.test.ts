// The agent's copy on disk is the written copy plus the deltas accepted since: a restart (or a hook
// process) replays them, checks the result against the last delta's digest, and when that fails
// keeps the longest prefix whose every step verifies. Pure: no host, no store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replayDeltas } from '../../src/agent/agent.js';
import { applyDelta, type DesiredDelta, type DesiredState } from '../../src/core/control-plane.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import * as fx from '../compile/fixtures.js';

const net = fx.network({ name: 'n1', bridge: 'br0' });
const pool = fx.pool(net, { family: 4 });
const vm = { ...fx.vm('a'), host: 'h1' };
const vif = fx.vif(vm, net, { mac: '52:54:00:00:00:01', ifname: 'vnet0' });
const base: DesiredState = (() => {
  const snapshot = { ...fx.emptySnapshot(), networks: [net], pools: [pool], vms: [vm], vifs: [vif] };
  const d = { host: 'h1', snapshot, settings: {} };
  return { ...d, storeIdentity: 's1', revision: 1, digest: desiredDigest(d) };
})();

/** Three deltas, each adding one address, with the digests the server would send. */
function chain(): DesiredDelta[] {
  const out: DesiredDelta[] = [];
  let have = base;
  for (let i = 0; i < 3; i++) {
    const a = fx.assign(vif, pool, `10.0.0.${10 + i}`);
    const delta: DesiredDelta = { storeIdentity: 's1', fromRevision: have.revision, revision: have.revision + 1, digest: '', upsert: { assignments: [a] }, remove: {}, settings: {} };
    delta.digest = desiredDigest(applyDelta(have, delta));
    out.push(delta);
    have = applyDelta(have, delta);
  }
  return out;
}

test('a whole chain that verifies at its end is replayed', () => {
  const r = replayDeltas(base, chain());
  assert.equal(r.broken, false);
  assert.equal(r.applied, 3);
  assert.equal(r.desired?.revision, 4);
  assert.deepEqual(r.desired?.snapshot.assignments.map((a) => a.address), ['10.0.0.10', '10.0.0.11', '10.0.0.12']);
});

test('a step that does not verify: the longest verified prefix is kept and the chain is broken', () => {
  const deltas = chain();
  deltas[1] = { ...deltas[1], digest: 'not-the-digest' };
  const r = replayDeltas(base, deltas);
  assert.equal(r.broken, true);
  assert.equal(r.applied, 1);
  assert.equal(r.desired?.revision, 2);
  assert.deepEqual(r.desired?.snapshot.assignments.map((a) => a.address), ['10.0.0.10']);
});

test('a delta made for another copy ends the chain; the first step failing keeps the written copy', () => {
  const deltas = chain();
  const gap = replayDeltas(base, [deltas[0], deltas[2]]);
  assert.deepEqual([gap.broken, gap.applied, gap.desired?.revision], [true, 1, 2]);
  const bad = replayDeltas(base, [{ ...deltas[0], digest: 'x' }]);
  assert.deepEqual([bad.broken, bad.applied, bad.desired], [true, 0, base]);
  assert.deepEqual(replayDeltas(undefined, deltas), { desired: undefined, applied: 0, broken: true });
  assert.deepEqual(replayDeltas(base, []), { desired: base, applied: 0, broken: false });
});
