// Benchmark of host enforcement apply times, inside a throwaway network namespace (re-executes
// itself under `unshare -n`). Side by side: ipvisor's named concatenated sets, (a) one chain per
// VIF with anonymous sets, (b) one iptables process per rule (libvirt-nethook-helper style,
// sampled and extrapolated). Usage: node --import tsx bench/enforce/run.ts [--quick]
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { compileHostPlan } from '../../src/core/compile/host-plan.js';
import type { HostFacts } from '../../src/core/compile/host-plan.js';
import { renderTableReplace } from '../../src/core/compile/nft-ruleset.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { nftApply } from '../../src/agent/host/nft.js';
import { applyHost } from '../../src/agent/host/apply.js';
import { openStore } from '../../src/core/store/open.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Snapshot } from '../../src/core/model/snapshot.js';
import { assign, emptySnapshot, network, pool, vif, vm } from '../../test/compile/fixtures.js';

if (!process.env.IPVISOR_BENCH_INNER) {
  const r = spawnSync('unshare', ['-n', process.execPath, '--import', 'tsx', ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, IPVISOR_BENCH_INNER: '1' } });
  process.exit(r.status ?? 1);
}

const quick = process.argv.includes('--quick');
const runner = createHostRunner({ netns: undefined });
const sizes = process.argv.includes("--size") ? [Number(process.argv[process.argv.indexOf("--size") + 1])] : quick ? [1000] : [1000, 5000, 20000];

function snapshotOf(n: number): Snapshot {
  const s = emptySnapshot();
  const net = network({ name: 'bench', bridge: 'br0', mode: 'isolated', defaultLocking: 'locked' });
  const p4 = pool(net, { family: 4 });
  const p6 = pool(net, { family: 6 });
  s.networks.push(net);
  s.pools.push(p4, p6);
  const v = vm('b');
  s.vms.push(v);
  for (let i = 0; i < n; i++) {
    const mac = `52:54:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    const f = vif(v, net, { mac, ifname: `vn${i}`, device: i });
    s.vifs.push(f);
    s.assignments.push(
      assign(f, p4, `10.${(i >> 8) & 255}.${i & 255}.1`),
      assign(f, p4, `10.${((i >> 8) & 255) + 128}.${i & 255}.2`),
      assign(f, p6, `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`),
    );
  }
  return s;
}

const facts: HostFacts = { links: { br0: { up: true, addresses: [] } } };

async function nft(args: string[], input?: string): Promise<void> {
  await runner.run(['nft', ...args], { input });
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await fn();
  return [(performance.now() - t) / 1000, r];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function flush(): Promise<void> {
  await nft(['flush', 'ruleset']);
}

/** (a) One chain per VIF with anonymous sets, jumped to from an ifname vmap (Incus-like). */
function perVifChains(s: Snapshot): string {
  const byVif = new Map<string, string[]>();
  for (const a of s.assignments) byVif.set(a.vifUuid!, [...(byVif.get(a.vifUuid!) ?? []), a.address]);
  const lines = ['table bridge perchain {'];
  const vmap: string[] = [];
  s.vifs.forEach((f, i) => {
    const addrs = byVif.get(f.uuid) ?? [];
    const v4 = addrs.filter((a) => !a.includes(':'));
    const v6 = addrs.filter((a) => a.includes(':'));
    lines.push(`chain vif${i} {`, `ether saddr != ${f.mac} drop`, `ether type ip ip saddr != { ${v4.join(', ')} } drop`, `ether type ip6 ip6 saddr != { ${v6.join(', ')}, fe80::/64 } drop`, '}');
    vmap.push(`"${f.ifname}" : jump vif${i}`);
  });
  lines.push('chain prerouting {', 'type filter hook prerouting priority -250; policy accept;', `iifname vmap { ${vmap.join(', ')} }`, '}', '}');
  return lines.join('\n') + '\n';
}

/** (b) iptables argv for one VIF, one process per rule. */
function iptablesRules(s: Snapshot, i: number): string[][] {
  const f = s.vifs[i];
  const addrs = s.assignments.filter((a) => a.vifUuid === f.uuid);
  const out: string[][] = [];
  for (const a of addrs.filter((x) => x.family === 4)) out.push(['iptables', '-w', '-A', 'FORWARD', '-i', f.ifname!, '-s', a.address, '-j', 'ACCEPT']);
  out.push(['iptables', '-w', '-A', 'FORWARD', '-i', f.ifname!, '-j', 'DROP']);
  for (const a of addrs.filter((x) => x.family === 6)) out.push(['ip6tables', '-w', '-A', 'FORWARD', '-i', f.ifname!, '-s', a.address, '-j', 'ACCEPT']);
  out.push(['ip6tables', '-w', '-A', 'FORWARD', '-i', f.ifname!, '-j', 'DROP']);
  return out;
}

/** Loads VIFs [0, upto) for (b) in bulk with iptables-restore, so a sample can be timed on top. */
async function iptablesPreload(s: Snapshot, upto: number): Promise<void> {
  const v4 = ['*filter'];
  const v6 = ['*filter'];
  for (let i = 0; i < upto; i++) {
    for (const r of iptablesRules(s, i)) (r[0] === 'iptables' ? v4 : v6).push(r.slice(2).join(' '));
  }
  v4.push('COMMIT');
  v6.push('COMMIT');
  await runner.run(['iptables-restore', '-w'], { input: v4.join('\n') + '\n' });
  await runner.run(['ip6tables-restore', '-w'], { input: v6.join('\n') + '\n' });
}

const rows: string[] = [];
const say = (line: string) => {
  rows.push(line);
  console.log(line);
};

say(`host enforcement apply benchmark (${new Date().toISOString()}), inside unshare -n; nft ${runner ? (await runner.run(['nft', '--version'])).stdout.trim() : ''}`);
say('VIFs have 1 MAC + 2 IPv4 + 1 IPv6 each; times in seconds (median of 3 unless noted)');
say('');
say('| VIFs | ipvisor full apply (compile+nft -f) | same, end to end from the store (applyHost) | re-verify, full (observe+diff) | re-verify, quick (periodic) | one-VIF change, end to end (applyHost scope, median of 10) | drift repair after flush (applyHost) | (a) chain per VIF | (b) iptables process per rule (extrapolated) | (a)/ipvisor | (b)/ipvisor |');
say('|---|---|---|---|---|---|---|---|---|---|---|');

for (const n of sizes) {
  const s = snapshotOf(n);
  // ipvisor: full apply into an empty ruleset
  const full: number[] = [];
  let plan = compileHostPlan(s, facts);
  void plan;
  for (let k = 0; k < 3; k++) {
    await flush();
    const [t] = await time(async () => {
      plan = compileHostPlan(s, facts);
      await nftApply(runner, renderTableReplace('bridge', plan.nft) + renderTableReplace('inet', plan.nft));
    });
    full.push(t);
  }
  // end to end through the store: the path `ipvisor apply`, serve and the hooks take
  await flush();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-bench-'));
  process.env.IPVISOR_RUN_DIR = dir;
  const store = await openStore(join(dir, 'db.sqlite'), { create: true });
  await store.transaction(async (tx) => {
    for (const x of s.networks) await tx.insertNetwork(x);
    for (const x of s.pools) await tx.insertPool(x);
    for (const x of s.vms) await tx.insertVm(x);
    for (const x of s.vifs) await tx.insertVif(x);
    for (const x of s.assignments) await tx.insertAssignment(x);
  }, { write: true });
  const [e2e] = await time(() => applyHost(store, { actor: 'bench', runner }));
  const verify: number[] = [];
  const quickVerify: number[] = [];
  for (let k = 0; k < 3; k++) {
    const [t, changes] = await time(() => applyHost(store, { actor: 'bench', runner }));
    if (changes.length) throw new Error(`re-verify found differences: ${JSON.stringify(changes).slice(0, 600)}`);
    verify.push(t);
    const [tq, cq] = await time(() => applyHost(store, { actor: 'bench', runner, quick: true }));
    if (cq.length) throw new Error(`quick re-verify found differences: ${JSON.stringify(cq).slice(0, 600)}`);
    quickVerify.push(tq);
  }
  // one-VIF change: a new IPv4 on one VIF, then released again, each through applyHost's one-VIF
  // path, from a separate small process (as a hook runs it)
  const child = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'one-vif.ts'), join(dir, 'db.sqlite'), s.pools[0].uuid, ...Array.from({ length: 10 }, (_, k) => s.vifs[k * 7].uuid)], { env: process.env, encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`one-vif.ts: ${child.stderr}`);
  const one: number[] = JSON.parse(child.stdout).times;
  // drift repair: `nft flush ruleset`, then the reconcile serve runs on the monitor event
  await flush();
  const [repair] = await time(() => applyHost(store, { actor: 'bench', runner }));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  // (a) chain per VIF, one nft -f (one run; it is slow)
  let a = NaN;
  if (n <= 5000) {
    await flush();
    [a] = await time(() => nft(['-f', '-'], perVifChains(s)));
  }
  // (b) one iptables process per rule: time a sample of VIFs on top of the rest, extrapolate
  let b = NaN;
  if (n <= 5000) {
    await flush();
    const sample = n <= 1000 ? 50 : 25;
    await iptablesPreload(s, n - sample);
    const [t] = await time(async () => {
      for (let i = n - sample; i < n; i++) for (const argv of iptablesRules(s, i)) await runner.run(argv);
    });
    b = (t / sample) * n;
  }
  await flush();
  const f = median(full);
  say(`| ${n} | ${f.toFixed(3)} | ${e2e.toFixed(3)} | ${median(verify).toFixed(3)} | ${median(quickVerify).toFixed(3)} | ${(median(one) * 1000).toFixed(1)} ms | ${repair.toFixed(3)} | ${Number.isNaN(a) ? 'not run' : a.toFixed(3)} | ${Number.isNaN(b) ? 'not run' : b.toFixed(1)} | ${Number.isNaN(a) ? '-' : (a / f).toFixed(1) + 'x'} | ${Number.isNaN(b) ? '-' : (b / f).toFixed(0) + 'x'} |`);
}
say('');
say('Targets: 20,000 VIFs full apply <= 1.5 s; one-VIF change <= 20 ms.');
