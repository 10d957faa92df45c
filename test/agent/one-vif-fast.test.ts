// The running agent's one-VIF path (desired-state changes and hook events that touch a few VIFs:
// their elements only, through a persistent `nft -i`) leaves the kernel exactly where a full
// reconcile would, and a fast transaction that fails falls back to the full path. Real nft in a
// network namespace this test creates and removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent } from '../../src/agent/agent.js';
import { applyHost } from '../../src/agent/host/apply.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { nftObserve } from '../../src/agent/host/nft.js';
import { openHostState, closeHostStates } from '../../src/agent/state.js';
import { compileHostPlan } from '../../src/core/compile/host-plan.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import type { ControlPlane, DesiredState } from '../../src/core/control-plane.js';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import { assign, emptySnapshot, network, pool, vif, vm } from '../compile/fixtures.js';
import { netnsSkipReason, sh } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const HOST = 'fast-host';
const skip = await netnsSkipReason();

const idle: ControlPlane = {
  desiredState: (_h, q) => new Promise((_r, reject) => q?.signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true })),
  async reportApplied() {},
  async reportFacts() {},
};

function state(snapshot: Snapshot, revision: number): DesiredState {
  const d = { host: HOST, snapshot, settings: {} };
  return { ...d, storeIdentity: 'test-store', revision, digest: desiredDigest(d) };
}

test('one-VIF changes in a running agent equal a full reconcile; a failed fast transaction falls back', { skip }, async () => {
  const ns = `iv${randomBytes(3).toString('hex')}fp`;
  const dir = mkdtempSync(join(tmpdir(), 'ipv-onevif-'));
  const saved = process.env.IPVISOR_RUN_DIR;
  process.env.IPVISOR_RUN_DIR = join(dir, 'run');
  await sh(['ip', 'netns', 'add', ns]);
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  try {
    const runner = createHostRunner({ netns: ns });
    const s = emptySnapshot();
    const net = network({ name: 'lan', bridge: 'br0', mode: 'isolated', defaultLocking: 'locked' });
    const p4 = pool(net, { family: 4 });
    const p6 = pool(net, { family: 6 });
    s.networks.push(net);
    s.pools.push(p4, p6);
    const m = { ...vm('m'), host: HOST };
    s.vms.push(m);
    for (let i = 0; i < 30; i++) {
      const f = vif(m, net, { mac: `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`, ifname: `tv${i}`, device: i, boundAt: '2026-01-01T00:00:00.000Z' });
      s.vifs.push(f);
      s.assignments.push(assign(f, p4, `10.9.0.${i + 1}`), assign(f, p6, `2001:db8::${(i + 1).toString(16)}`));
    }
    const log: string[] = [];
    const agent = new Agent({ host: HOST, controlPlane: idle, local: openHostState(join(dir, 'state')), log: (l) => log.push(l), runner, intervalMs: 0, interfaceExists: async () => false });
    let rev = 1;
    agent.accept(state(s, rev));
    running = agent.run(stop.signal);
    await agent.ready;

    /** The kernel's bridge elements against the compiled plan, and a full reconcile finds nothing. */
    const assertLikeFull = async (what: string) => {
      const want = compileHostPlan(agent.effectiveDesired().snapshot, { links: {}, hostname: HOST }).nft.bridge;
      const have = (await nftObserve(runner, ['bridge'])).elements.bridge;
      for (const set of Object.keys(want) as (keyof typeof want)[]) assert.deepEqual([...have[set]].sort(), [...want[set]].sort(), `${what}: set ${set}`);
      const left = await applyHost(agent.source(), { actor: 'test', runner, dryRun: true });
      assert.deepEqual(left.filter((c) => c.kind.startsWith('nft')), [], `${what}: the full reconcile would still change nft`);
    };
    await assertLikeFull('start');

    const fast = async (what: string, next: Snapshot) => {
      const before = agent.nftSessionApplied;
      assert.equal(agent.accept(state(next, ++rev)), true);
      await agent.reconcile('desired state');
      assert.equal(agent.nftSessionApplied, before + 1, `${what}: went through the one-VIF path`);
      await assertLikeFull(what);
      return next;
    };
    let cur = s;
    const extra = assign(cur.vifs[3], p4, '10.9.1.3');
    cur = await fast('address added', { ...cur, assignments: [...cur.assignments, extra] });
    cur = await fast('address removed', { ...cur, assignments: cur.assignments.filter((a) => a.uuid !== extra.uuid) });
    cur = await fast('locking unlocked', { ...cur, vifs: cur.vifs.map((v, i) => (i === 5 ? { ...v, locking: 'unlocked' as const } : v)) });
    cur = await fast('locking disabled', { ...cur, vifs: cur.vifs.map((v, i) => (i === 5 ? { ...v, locking: 'disabled' as const } : v)) });
    cur = await fast('rebound to a new tap', { ...cur, vifs: cur.vifs.map((v, i) => (i === 9 ? { ...v, ifname: 'tv9b' } : v)) });
    // (its tap is gone too: a VIF whose interface is still here stays enforced until it goes)
    const gone = cur.vifs[7];
    cur = await fast('VIF removed', { ...cur, vifs: cur.vifs.filter((v) => v !== gone), assignments: cur.assignments.filter((a) => a.vifUuid !== gone.uuid) });
    const added = vif(m, net, { mac: '52:54:00:00:02:01', ifname: 'tvnew', device: 40, boundAt: '2026-01-02T00:00:00.000Z' });
    cur = await fast('VIF added', { ...cur, vifs: [...cur.vifs, added], assignments: [...cur.assignments, assign(added, p4, '10.9.2.1')] });

    // a hook event for one VIF: the VM started on another tap
    const before = agent.nftSessionApplied;
    const f = cur.vifs[12];
    await agent.hookEvent({ op: 'started', vmUuid: f.vmUuid, interfaces: [{ mac: f.mac, ifname: 'tv12b' }] });
    assert.equal(agent.nftSessionApplied, before + 1, 'the hook event went through the one-VIF path');
    await assertLikeFull('hook event');
    // the running agent lays the binding over what it kept; a fresh look at the same state agrees
    const fresh = new Agent({ host: HOST, controlPlane: idle, local: openHostState(join(dir, 'state')), log: () => undefined, runner });
    assert.deepEqual(agent.effectiveDesired().snapshot.vifs, fresh.effectiveDesired().snapshot.vifs);

    // drift the fast path cannot know about: an element it recorded is gone from the kernel, so its
    // delete fails; the change is still enforced, through the full path
    const victim = cur.vifs[11];
    const victimAddr = cur.assignments.find((a) => a.vifUuid === victim.uuid && a.family === 4)!;
    await sh(['ip', 'netns', 'exec', ns, 'nft', 'delete', 'element', 'bridge', 'ipvisor', 'vif_ip4', `{ "${victim.ifname}" . ${victimAddr.address} }`]);
    const applied = agent.nftSessionApplied;
    assert.equal(agent.accept(state({ ...cur, assignments: cur.assignments.filter((a) => a.uuid !== victimAddr.uuid) }, ++rev)), true);
    await agent.reconcile('desired state');
    assert.equal(agent.nftSessionApplied, applied, 'the failed fast transaction applied nothing');
    assert.ok(log.some((l) => /one-VIF change failed/.test(l)), `the fallback is logged: ${log.join(' | ')}`);
    await assertLikeFull('fallback after a failed fast transaction');

    // the tables rebuilt under the persistent nft -i (its cache of them is stale): still one transaction
    cur = { ...cur, assignments: cur.assignments.filter((a) => a.uuid !== victimAddr.uuid) };
    await sh(['ip', 'netns', 'exec', ns, 'nft', 'flush', 'ruleset']);
    await agent.reconcile('periodic');
    await assertLikeFull('rebuilt after a flush');
    cur = await fast('address added after a rebuild', { ...cur, assignments: [...cur.assignments, assign(cur.vifs[2], p4, '10.9.3.2')] });

    // a change that is more than VIFs (a network's default locking): the full path
    const full = agent.nftSessionApplied;
    const net2 = { ...net, defaultLocking: 'unlocked' as const };
    assert.equal(agent.accept(state({ ...cur, networks: [net2] }, ++rev)), true);
    await agent.reconcile('desired state');
    assert.equal(agent.nftSessionApplied, full, 'a network change goes through the full path');
    await assertLikeFull('network change');
  } finally {
    stop.abort();
    await running?.catch(() => undefined);
    closeHostStates();
    await sh(['ip', 'netns', 'del', ns], { allowFail: true });
    if (saved === undefined) delete process.env.IPVISOR_RUN_DIR;
    else process.env.IPVISOR_RUN_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
