// Deltas between the control plane and an agent (issue 10): an agent that asks with the revision of
// its copy gets only what changed in its host's slice; a revision the server cannot diff from gets a
// snapshot; a delta whose result does not verify makes the agent ask for a snapshot; only the owning
// host's agent is woken for a VIF change. With a network namespace (root): the agent enforces a delta,
// and its report carries the drift still pending after a reconcile (host show prints it). Each on
// SQLite and PostgreSQL, through the in-process and the HTTP adapter.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, OFFLINE } from '../../src/agent/agent.js';
import { createHostRunner, type HostRunner } from '../../src/agent/host/exec.js';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { openHostState } from '../../src/agent/state.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import { loadHostDesired } from '../../src/core/service/host-desired.js';
import type { ControlPlane, DesiredAnswer, DesiredState } from '../../src/core/control-plane.js';
import { applyDelta } from '../../src/core/control-plane.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import type { Store } from '../../src/core/store/store.js';
import { openStore } from '../../src/core/store/open.js';
import { agentRoutes } from '../../src/server/agent-http.js';
import { StoreControlPlane } from '../../src/server/control-plane.js';
import { startHttpServer } from '../../src/server/http.js';
import { addHost } from '../../src/server/hosts.js';
import { storeBackends } from '../support/backends.js';
import { cli } from '../support/cli.js';
import { netnsSkipReason } from '../support/netns.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { until as untilWithin } from '../support/until.js';

guardRootNamespace();

const netnsSkip = await netnsSkipReason();

async function ok(db: string, ...args: string[]): Promise<string> {
  const r = await cli(db, ...args);
  assert.equal(r.code, 0, `ipvisor ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Two hosts, one network and pool, VMs a1, a2 on h1 and b1 on h2, one VIF each, bound. */
async function seed(db: string): Promise<void> {
  await ok(db, 'network', 'create', 'lan', '--bridge', 'br0', '--subnet', '10.70.0.0/16', '--default-locking', 'locked');
  await ok(db, 'pool', 'create', 'p', '--network', 'lan', '--cidr', '10.70.0.0/16');
  for (const [vm, host, n] of [['a1', 'h1', 1], ['a2', 'h1', 2], ['b1', 'h2', 3]] as const) {
    await ok(db, 'vm', 'add', vm, '--host', host);
    await ok(db, 'vif', 'add', vm, '--network', 'lan', '--mac', `52:54:00:70:00:0${n}`);
    await ok(db, 'vif', 'bind', `${vm}:0`, '--ifname', `vnd${n}`, '--host', host);
  }
}

async function allocate(db: string, vif: string): Promise<string> {
  return JSON.parse(await ok(db, '--json', 'ip', 'allocate', '--vif', vif)).address as string;
}

const snapshotOf = (a: DesiredAnswer): DesiredState => {
  assert.equal(a.kind, 'snapshot');
  return (a as Extract<DesiredAnswer, { kind: 'snapshot' }>).state;
};
const since = (s: DesiredState) => ({ digest: s.digest, revision: s.revision, storeIdentity: s.storeIdentity });

for (const backend of storeBackends()) {
  describe(`desired state deltas (${backend.name})`, { skip: backend.skip }, () => {
    let db: string;
    let store: Store;
    let cp: StoreControlPlane;
    let http: Awaited<ReturnType<typeof startHttpServer>>;
    const dir = mkdtempSync(join(tmpdir(), 'ipv-delta-'));
    const remote: Record<string, HttpControlPlane> = {};

    before(async () => {
      await backend.setup();
      db = await backend.newUrl();
      await ok(db, 'init');
      await seed(db);
      store = await openStore(db);
      cp = new StoreControlPlane(store, { requireRegistration: true });
      for (const h of ['h1', 'h2']) {
        const { token } = await addHost(store, h, 'tester');
        writeFileSync(join(dir, h), token, { mode: 0o600 });
      }
      http = await startHttpServer({ store, listen: '127.0.0.1:0', plugins: [{ plugin: agentRoutes as never, options: { controlPlane: cp, version: 'test' } }] });
      for (const h of ['h1', 'h2']) remote[h] = new HttpControlPlane({ servers: [http.url], tokenFile: join(dir, h) });
    });
    after(async () => {
      for (const c of Object.values(remote)) c.close();
      cp?.close();
      await http?.close();
      await store?.close();
      await backend.teardown();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const adapter of ['in-process', 'http'] as const) {
      const port = (h: string): ControlPlane => (adapter === 'http' ? remote[h] : cp);

      test(`${adapter}: a delta after an allocation carries only that assignment, and it verifies`, async () => {
        const copy = snapshotOf(await port('h1').desiredState('h1'));
        const address = await allocate(db, 'a1:0');
        const a = await port('h1').desiredState('h1', since(copy));
        assert.equal(a.kind, 'delta', JSON.stringify(a).slice(0, 300));
        const d = (a as Extract<DesiredAnswer, { kind: 'delta' }>).delta;
        assert.equal(d.fromRevision, copy.revision);
        assert.ok(d.revision > copy.revision);
        assert.deepEqual(Object.keys(d.upsert), ['assignments']);
        assert.deepEqual(d.remove, {});
        assert.equal(d.upsert.assignments!.length, 1);
        assert.equal(d.upsert.assignments![0].address, address);
        const next = applyDelta(copy, d);
        assert.equal(desiredDigest(next), d.digest);
        assert.equal(next.digest, snapshotOf(await port('h1').desiredState('h1', { full: true })).digest);
        // the server's slice is compile/host-desired.ts's (its index must not drift from it)
        const whole = await loadHostDesired(store, 'h1');
        assert.equal(desiredDigest(whole), next.digest);
        // the other host's slice did not change
        const other = snapshotOf(await port('h2').desiredState('h2'));
        assert.equal((await port('h2').desiredState('h2', since(other))).kind, 'unchanged');
      });

      test(`${adapter}: a VM moving away and a released address come as removals`, async () => {
        const copy = snapshotOf(await port('h1').desiredState('h1'));
        await ok(db, 'vm', 'set', 'a2', '--host', 'h2');
        const d = (await port('h1').desiredState('h1', since(copy))) as Extract<DesiredAnswer, { kind: 'delta' }>;
        assert.equal(d.kind, 'delta');
        assert.equal(d.delta.remove.vms?.length, 1);
        assert.equal(d.delta.remove.vifs?.length, 1);
        assert.equal(desiredDigest(applyDelta(copy, d.delta)), d.delta.digest);
        await ok(db, 'vm', 'set', 'a2', '--host', 'h1');
      });

      test(`${adapter}: a revision the server cannot diff from gets a snapshot`, async () => {
        const copy = snapshotOf(await port('h1').desiredState('h1'));
        await allocate(db, 'a1:0');
        // another store's copy
        assert.equal((await port('h1').desiredState('h1', { ...since(copy), storeIdentity: 'another-store' })).kind, 'snapshot');
        // a revision this store never reached (a restored backup on the server)
        assert.equal((await port('h1').desiredState('h1', { ...since(copy), revision: copy.revision + 1_000_000 })).kind, 'snapshot');
        // no revision at all (an agent of the previous minor version)
        assert.equal((await port('h1').desiredState('h1', { digest: copy.digest })).kind, 'snapshot');
        // the same revision still diffs
        assert.equal((await port('h1').desiredState('h1', since(copy))).kind, 'delta');
      });
    }

    test('more change rows than a delta is worth: a snapshot', async () => {
      const small = new StoreControlPlane(store, { requireRegistration: true, maxDeltaChanges: 3 });
      try {
        const copy = snapshotOf(await small.desiredState('h1'));
        await allocate(db, 'a1:0');
        assert.equal((await small.desiredState('h1', since(copy))).kind, 'delta');
        for (let i = 0; i < 4; i++) await allocate(db, 'a1:0');
        assert.equal((await small.desiredState('h1', since(copy))).kind, 'snapshot');
      } finally {
        small.close();
      }
    });

    test('a VIF change wakes only the owning host (long-polls of h1 and h2, an allocation on h1)', async () => {
      const c1 = snapshotOf(await remote.h1.desiredState('h1'));
      const c2 = snapshotOf(await remote.h2.desiredState('h2'));
      const ac = new AbortController();
      let h2Answered = false;
      const h2 = remote.h2.desiredState('h2', { ...since(c2), waitMs: 30_000, signal: ac.signal }).then(
        () => (h2Answered = true),
        () => undefined,
      );
      const h1 = remote.h1.desiredState('h1', { ...since(c1), waitMs: 30_000 });
      while (cp.waiting < 2) await new Promise((r) => setTimeout(r, 10));
      const woken = { ...cp.woken };
      const address = await allocate(db, 'a1:0');
      const a = await h1;
      assert.equal(a.kind, 'delta');
      assert.equal((a as Extract<DesiredAnswer, { kind: 'delta' }>).delta.upsert.assignments?.[0].address, address);
      assert.ok((cp.woken.h1 ?? 0) - (woken.h1 ?? 0) >= 1, 'h1 woken');
      assert.equal((cp.woken.h2 ?? 0) - (woken.h2 ?? 0), 0, 'h2 not woken');
      assert.equal(cp.waiting, 1, 'h2 still waits');
      assert.equal(h2Answered, false);
      ac.abort();
      await h2;
    });

    describe('an agent host (network namespace)', { skip: netnsSkip }, () => {
      const ns = `ivd${Math.random().toString(16).slice(2, 6)}`;
      let runner: HostRunner;
      let oldRunDir: string | undefined;
      before(() => {
        execFileSync('ip', ['netns', 'add', ns]);
        runner = createHostRunner({ netns: ns });
        oldRunDir = process.env.IPVISOR_RUN_DIR;
        process.env.IPVISOR_RUN_DIR = join(dir, `run-${backend.name}`);
      });
      after(() => {
        if (oldRunDir === undefined) delete process.env.IPVISOR_RUN_DIR;
        else process.env.IPVISOR_RUN_DIR = oldRunDir;
        execFileSync('ip', ['netns', 'del', ns]);
      });

      const ruleset = () => execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']).toString();
      const until = (what: string, fn: () => boolean | Promise<boolean>) => untilWithin(what, fn, { everyMs: 20 });

      test('the agent enforces a delta; a delta that does not verify makes it ask for a snapshot; its report carries the drift left', async () => {
        // a control plane that, when told to, drops what a delta upserts (a feed that missed a change)
        let corrupt = false;
        // an nft transaction that adds `blocked` fails (the kernel refusing it, as an injected fault)
        let blocked: string | undefined;
        const flaky: HostRunner = {
          netns: runner.netns,
          run: (argv, o) => {
            if (blocked && argv[0] === 'nft' && o?.input?.includes(blocked)) return Promise.reject(new IpvisorError('HOST_COMMAND', 'nft -f: exit 1: injected failure'));
            return runner.run(argv, o);
          },
        };
        const controlPlane: ControlPlane = {
          async desiredState(host, q) {
            const a = await remote.h1.desiredState(host, q);
            if (corrupt && a.kind === 'delta') {
              corrupt = false;
              return { kind: 'delta', delta: { ...a.delta, upsert: {} } };
            }
            return a;
          },
          reportApplied: (host, r) => remote.h1.reportApplied(host, r),
          reportFacts: (host, f) => remote.h1.reportFacts(host, f),
        };
        const logs: string[] = [];
        const agent = new Agent({ host: 'h1', controlPlane, local: openHostState(join(dir, `state-${backend.name}`)), runner: flaky, intervalMs: 0, waitMs: 20_000, log: (m) => logs.push(m), interfaceExists: async () => true });
        const ac = new AbortController();
        const running = agent.run(ac.signal);
        try {
          await agent.ready;
          const serverDigest = async () => (await cp.stateFor('h1')).digest;
          await until('the first snapshot enforced', async () => agent.state.digest === (await serverDigest()) && !!agent.state.last?.ok);

          // a delta: enforced, nothing asked again
          const before = { ...agent.received };
          const first = await allocate(db, 'a1:0');
          await until(`${first} in the kernel`, () => ruleset().includes(first));
          await until('the copy at the server digest', async () => agent.state.digest === (await serverDigest()));
          assert.equal(agent.received.delta - before.delta, 1, JSON.stringify(agent.received));
          assert.equal(agent.received.snapshot - before.snapshot, 0);
          assert.equal(agent.received.mismatch - before.mismatch, 0);
          // the copy on disk is the written copy plus the deltas since: an agent (or a hook) started
          // from it has the same state
          const fromDisk = new Agent({ host: 'h1', controlPlane: OFFLINE, local: openHostState(join(dir, `state-${backend.name}`)), log: () => undefined });
          assert.equal(fromDisk.state.digest, agent.state.digest);
          assert.equal(fromDisk.state.revision, agent.state.revision);

          // a delta that does not verify: a snapshot, and the address enforced from it
          corrupt = true;
          const second = await allocate(db, 'a1:0');
          await until(`${second} in the kernel`, () => ruleset().includes(second));
          assert.equal(agent.received.mismatch - before.mismatch, 1);
          assert.equal(agent.received.snapshot - before.snapshot, 1);
          assert.equal(agent.state.digest, await serverDigest());
          assert.ok(logs.some((l) => /does not verify/.test(l)));

          // drift: the kernel refuses the next address; the report says what is still pending
          blocked = 'vnd2';
          const third = await allocate(db, 'a2:0');
          await until('a failed report with drift', () => !!agent.state.last && !agent.state.last.ok && agent.state.last.drift.some((l) => l.includes(third)));
          assert.ok(!ruleset().includes(third));
          await until('the report on the server', async () => /drift: .*10\.70\./.test(await ok(db, 'host', 'show', 'h1')) && (await ok(db, 'host', 'show', 'h1')).includes(third));
          const shown = JSON.parse(await ok(db, '--json', 'host', 'show', 'h1'));
          assert.ok(JSON.stringify(shown).includes(third), 'host show --json carries the drift');
          // the fault gone, the next full reconcile repairs it and the drift is empty again
          blocked = undefined;
          await agent.reconcile('test');
          assert.ok(ruleset().includes(third));
          assert.equal(agent.state.last?.ok, true);
          assert.deepEqual(agent.state.last?.drift, []);
        } finally {
          ac.abort();
          await running;
          await agent.teardown().catch(() => undefined);
        }
      });
    });
  });
}
