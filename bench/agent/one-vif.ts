// One-VIF change inside a running agent at N VIFs (default 20,000), from the change arriving to the
// element being in the kernel, inside a throwaway network namespace (re-executes itself under
// `unshare -n`). Side by side in one run:
//   - a desired-state change that adds (then removes) one address of one VIF: the agent's fast path
//     (its VIFs named by a delta, or found by comparing copies; one transaction through the agent's
//     persistent `nft -i`) next to applyHost's one-VIF scope path (one `nft -f -` process per change)
//     and the full reconcile (observe -> diff -> apply);
//   - a hook event that binds one VIF to a new tap (then back): the same.
//   node --import tsx bench/agent/one-vif.ts [--vifs 20000] [--samples 20]   (root; about 2 minutes on a quiet machine)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

if (!process.env.IPVISOR_BENCH_INNER) {
  if (process.getuid?.() !== 0) {
    console.log('bench/agent/one-vif: needs root (a network namespace); skipped');
    process.exit(0);
  }
  const r = spawnSync('unshare', ['-n', process.execPath, '--import', 'tsx', ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, IPVISOR_BENCH_INNER: '1' } });
  process.exit(r.status ?? 1);
}

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const VIFS = arg('vifs', 20_000);
const SAMPLES = arg('samples', 20);
const dir = mkdtempSync(join(tmpdir(), 'ipv-bench-onevif-'));
process.env.IPVISOR_RUN_DIR = join(dir, 'run');
process.env.IPVISOR_STATE_DIR = join(dir, 'state');

const { Agent } = await import('../../src/agent/agent.js');
const { applyHost } = await import('../../src/agent/host/apply.js');
const { createHostRunner } = await import('../../src/agent/host/exec.js');
const { openHostState } = await import('../../src/agent/state.js');
const { setThisHost } = await import('../../src/core/host-identity.js');
const { desiredDigest } = await import('../../src/core/compile/host-desired.js');
const fx = await import('../../test/compile/fixtures.js');
type DesiredState = import('../../src/core/control-plane.js').DesiredState;
type ControlPlane = import('../../src/core/control-plane.js').ControlPlane;
type DesiredDelta = import('../../src/core/control-plane.js').DesiredDelta;

const HOST = 'bench-host';
setThisHost(HOST);
const runner = createHostRunner({ netns: undefined });
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

function build(n: number): DesiredState {
  const s = fx.emptySnapshot();
  const net = fx.network({ name: 'bench', bridge: 'br0', mode: 'isolated', defaultLocking: 'locked' });
  const p4 = fx.pool(net, { family: 4 });
  const p6 = fx.pool(net, { family: 6 });
  s.networks.push(net);
  s.pools.push(p4, p6);
  let vm = { ...fx.vm('b0'), host: HOST };
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) s.vms.push((vm = { ...fx.vm(`b${i}`), host: HOST }));
    const mac = `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    const f = fx.vif(vm, net, { mac, ifname: `vn${i}`, device: i % 10, boundAt: '2026-01-01T00:00:00.000Z' });
    s.vifs.push(f);
    s.assignments.push(fx.assign(f, p4, `10.${(i >> 8) & 255}.${i & 255}.1`), fx.assign(f, p4, `10.${((i >> 8) & 255) + 128}.${i & 255}.2`), fx.assign(f, p6, `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`));
  }
  const d = { host: HOST, snapshot: s, settings: {} };
  return { ...d, storeIdentity: 'bench-store', revision: 1, digest: desiredDigest(d) };
}


/** The state with one more address on VIF `k` (or without it again). */
function withAddress(base: DesiredState, k: number, on: boolean, rev: number): DesiredState {
  const s = base.snapshot;
  const f = s.vifs[k];
  const extra = fx.assign(f, s.pools[0], `172.16.${k & 255}.9`);
  const snapshot = { ...s, assignments: on ? [...s.assignments, { ...extra, uuid: `00000000-0000-4000-8000-${k.toString().padStart(12, '0')}` }] : s.assignments };
  const d = { host: HOST, snapshot, settings: {} };
  return { ...d, storeIdentity: 'bench-store', revision: rev, digest: `bench-${rev}` };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const rows: Array<[string, number[]]> = [];
const log: string[] = [];
// a control plane that never answers: the bench hands the agent its changes itself
const idle: ControlPlane = {
  desiredState: (_h, q) => new Promise((_r, reject) => q?.signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true })),
  async reportApplied() {},
  async reportFacts() {},
};
const agent = new Agent({ host: HOST, controlPlane: idle, local: openHostState(process.env.IPVISOR_STATE_DIR!), log: (m) => log.push(m), runner, intervalMs: 0 });
const stop = new AbortController();
let running: Promise<void> | undefined;
try {
  const base = build(VIFS);
  let rev = 1;
  agent.accept(base);
  const t0 = performance.now();
  running = agent.run(stop.signal);
  await agent.ready;
  const tFull = performance.now() - t0;
  const pick = (i: number) => 7 + ((i * 997) % (VIFS - 8));

  // desired-state change touching one VIF: add an address, then take it away again
  // timed from the accepted copy (accept() persists the whole copy first: shown on its own line)
  const accepts: number[] = [];
  const change = async (label: string, samples: number, how: (s: DesiredState, k: number) => Promise<unknown>) => {
    const xs: number[] = [];
    for (let i = 0; i < samples; i++) {
      const k = pick(i);
      for (const s of [withAddress(base, k, true, ++rev), withAddress(base, k, false, ++rev)]) {
        accepts.push(await timed(async () => agent.accept(s)));
        xs.push(await timed(() => how(s, k)));
      }
    }
    rows.push([label, xs]);
  };
  const before = agent.nftSessionApplied;
  // a delta names the VIFs it touches (Agent.acceptDelta); a whole new copy is compared with the last
  await change('desired-state change: agent fast path, VIFs named by the delta (nft -i)', SAMPLES, (s, k) => agent.reconcile('desired state', [s.snapshot.vifs[k].uuid]));
  await change('desired-state change: agent fast path, VIFs found by comparing copies (nft -i)', SAMPLES, () => agent.reconcile('desired state'));
  if (agent.nftSessionApplied - before !== 4 * SAMPLES) throw new Error(`the fast path applied ${agent.nftSessionApplied - before} of ${4 * SAMPLES} changes`);
  // the whole path of a delta as the agent's run loop takes it: apply it to the copy, verify the
  // server's digest (the server computed it; here outside the timing), keep it on disk, enforce
  const deltas: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const k = pick(i);
    for (const on of [true, false]) {
      const have = agent.state;
      const next = withAddress(base, k, on, ++rev);
      const extra = next.snapshot.assignments.find((a) => !base.snapshot.assignments.includes(a));
      const gone = base.snapshot.assignments.length === next.snapshot.assignments.length ? `00000000-0000-4000-8000-${k.toString().padStart(12, '0')}` : undefined;
      const delta: DesiredDelta = { storeIdentity: 'bench-store', fromRevision: have.revision!, revision: rev, digest: desiredDigest(next), upsert: extra ? { assignments: [extra] } : {}, remove: gone ? { assignments: [gone] } : {}, settings: next.settings };
      deltas.push(
        await timed(async () => {
          const scope = await agent.acceptDelta(delta);
          if (!Array.isArray(scope)) throw new Error(`the delta was not accepted as a one-VIF change (${String(scope)})`);
          await agent.reconcile('desired state', scope);
        }),
      );
    }
  }
  rows.push(['delta arriving: acceptDelta (apply, verify digest, keep on disk) + one-VIF reconcile', deltas]);
  await change('desired-state change: applyHost scope path (nft -f - per change)', SAMPLES, async (s, k) => {
    await applyHost(agent.source(), { actor: 'bench', runner, scope: { vifUuid: s.snapshot.vifs[k].uuid } });
  });
  await change('desired-state change: full reconcile (applyHost, observe + diff + apply)', Math.min(3, SAMPLES), () => applyHost(agent.source(), { actor: 'bench', runner }));
  rows.push(['(before each: Agent.accept() persisting the whole copy)', accepts]);
  agent.accept(withAddress(base, 0, false, ++rev));
  await agent.reconcile('desired state');

  // hook event for one VIF: its VM restarts on another tap, then back
  const hook = async (label: string, samples: number) => {
    const xs: number[] = [];
    for (let i = 0; i < samples; i++) {
      const f = base.snapshot.vifs[pick(i)];
      for (const ifname of [`${f.ifname}x`, f.ifname]) xs.push(await timed(() => agent.hookEvent({ op: 'started', vmUuid: f.vmUuid, interfaces: [{ mac: f.mac, ifname }] })));
    }
    rows.push([label, xs]);
  };
  await hook('hook event (started, one VIF): agent.hookEvent (persistent nft -i)', SAMPLES);
  // the elements are in the kernel: the full reconcile finds nothing to do
  const left = await applyHost(agent.source(), { actor: 'bench', runner, dryRun: true });
  if (left.length) throw new Error(`after the one-VIF changes the full reconcile would still change: ${left.slice(0, 5).map((c) => `${c.op} ${c.target}`).join('; ')}`);

  const w = Math.max(...rows.map(([l]) => l.length));
  const load = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`one-VIF change inside a running agent, ${VIFS} VIFs (1 MAC + 2 IPv4 + 1 IPv6 each), Node ${process.version}, ${(await runner.run(['nft', '--version'])).stdout.trim()}`);
  console.log(`first full apply: ${(tFull / 1000).toFixed(2)} s; load average ${load}`);
  console.log(`${'path'.padEnd(w)}  ${'n'.padStart(4)}  ${'p50 ms'.padStart(8)}  ${'p95 ms'.padStart(8)}`);
  for (const [label, xs] of rows) console.log(`${label.padEnd(w)}  ${String(xs.length).padStart(4)}  ${pct(xs, 50).toFixed(1).padStart(8)}  ${pct(xs, 95).toFixed(1).padStart(8)}`);
  const problems = log.filter((l) => /failed|error/i.test(l));
  if (problems.length) console.log(`agent log reported problems:\n${problems.slice(0, 5).join('\n')}`);
} finally {
  stop.abort();
  await running?.catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
