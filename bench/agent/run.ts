// Control plane and agents, side by side in one run (root: a network namespace for the agent's host):
//   1. change-to-enforced latency on a remote agent: an `ipvisor server` process (SQLite, and
//      PostgreSQL when installed), an agent over HTTP in this process enforcing into a namespace; from
//      the allocation request until the agent's nft transaction for the new element has returned.
//      Allocations through the server's HTTP API (as a provider's users make them), and on SQLite also
//      by another process (the CLI: the server learns of it by polling data_version); the long-poll
//      agent with deltas next to one taking full snapshots and to a 5 s polling agent.
//   2. 500 simulated agents long-polling one `ipvisor server` process: server RSS and CPU at rest,
//      fan-out latency of a change every host sees (a network) with deltas next to full snapshots,
//      and of one VIF change (one host).
//   node --import tsx bench/agent/run.ts [--agents 500] [--vms-per-host 10] [--samples 20] [--only latency|fanout]
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { openHostState } from '../../src/agent/state.js';
import type { ControlPlane, DesiredAnswer, DesiredState } from '../../src/core/control-plane.js';
import { applyDelta } from '../../src/core/control-plane.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import { openStore } from '../../src/core/store/open.js';
import { addHost } from '../../src/server/hosts.js';
import { allocate } from '../../src/core/service/ip.js';
import { addVif, createVm } from '../../src/core/service/vms.js';
import { runCli } from '../../src/cli/main.js';
import { postgresSkip, startPostgres, type PostgresServer } from '../../test/support/postgres.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const AGENTS = arg('agents', 500);
const SAMPLES = arg('samples', 20);
const VMS_PER_HOST = arg('vms-per-host', 10);
const ENTRY = resolve('src/cli/entry.ts');
const dir = mkdtempSync(join(tmpdir(), 'ipv-bench-agent-'));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (x: number) => `${x.toFixed(1)} ms`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cli = async (db: string, ...args: string[]) => {
  let out = '';
  let err = '';
  const code = await runCli(['--store', db, ...args], { stdout: (s) => (out += s), stderr: (s) => (err += s), env: { ...process.env, IPVISOR_ACTOR: 'bench' } });
  if (code !== 0) throw new Error(`ipvisor ${args.join(' ')} failed: ${err}`);
  return out;
};

/** `ipvisor server` as a process of its own; resolves once it listens. */
async function startServer(store: string, port: number): Promise<ChildProcess> {
  const server = spawn(process.execPath, [...(process.env.BENCH_SERVER_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_SERVER_PROF] : []), '--import', 'tsx', ENTRY, '--store', store, 'server', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IPVISOR_RUN_DIR: join(dir, `srv-run-${port}`) } });
  let log = '';
  server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  while (!log.includes('listening on')) {
    if (server.exitCode !== null) throw new Error(`ipvisor server exited: ${log}`);
    await sleep(100);
  }
  return server;
}

async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null) return;
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
}

/** A control plane that never sends the agent's revision: every change comes as a full snapshot. */
const snapshotsOnly = (cp: ControlPlane): ControlPlane => ({
  desiredState: (h, q) => cp.desiredState(h, { ...q, revision: undefined, storeIdentity: undefined }),
  reportApplied: (h, r) => cp.reportApplied(h, r),
  reportFacts: (h, f) => cp.reportFacts(h, f),
});

interface LatencyRow {
  store: string;
  allocation: string;
  agent: string;
  times: number[];
  /** Allocation request until the answer carrying it reached the agent (server and wire). */
  toAgent: number[];
  /** The allocation request's own round trip. */
  request: number[];
}

/** Notes when an answer naming each 10.80.x.y address reaches the agent. */
const timed = (cp: ControlPlane, arrived: Map<string, number>): ControlPlane => ({
  desiredState: async (h, q) => {
    const a = await cp.desiredState(h, q);
    const t = performance.now();
    if (a.kind !== 'unchanged') for (const ip of JSON.stringify(a).match(/10\.80\.\d+\.\d+/g) ?? []) if (!arrived.has(ip)) arrived.set(ip, t);
    return a;
  },
  reportApplied: (h, r) => cp.reportApplied(h, r),
  reportFacts: (h, f) => cp.reportFacts(h, f),
});

async function latencyOn(kind: 'sqlite' | 'postgres', storeUrl: string, ns: string, rows: LatencyRow[]): Promise<void> {
  const host = 'bench-host';
  await cli(storeUrl, 'init');
  await cli(storeUrl, 'network', 'create', 'lan', '--bridge', 'br0', '--subnet', '10.80.0.0/16', '--default-locking', 'locked');
  await cli(storeUrl, 'pool', 'create', 'p', '--network', 'lan', '--cidr', '10.80.0.0/16');
  for (let i = 0; i < 50; i++) {
    await cli(storeUrl, 'vm', 'add', `vm${i}`, '--host', host);
    await cli(storeUrl, 'vif', 'add', `vm${i}`, '--network', 'lan', '--mac', `52:54:00:80:00:${i.toString(16).padStart(2, '0')}`);
    await cli(storeUrl, 'vif', 'bind', `vm${i}:0`, '--ifname', `vnet${i}`, '--host', host);
  }
  const apiToken = JSON.parse(await cli(storeUrl, '--json', 'token', 'create', '--name', 'bench', '--role', 'admin')).token as string;
  const store = await openStore(storeUrl);
  const { token } = await addHost(store, host, 'bench');
  await store.close();
  const tokenFile = join(dir, `token-${kind}`);
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const port = 17000 + Math.floor(Math.random() * 1000);
  const server = await startServer(storeUrl, port);
  const url = `http://127.0.0.1:${port}`;
  const runner = createHostRunner({ netns: ns });
  let n = 0;
  const viaApi = async (vif: string): Promise<string> => {
    const r = await fetch(`${url}/api/v1/addresses`, { method: 'POST', headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ vif }) });
    const body = (await r.json()) as { address?: string; error?: { message: string } };
    if (!body.address) throw new Error(`POST /addresses: ${r.status} ${body.error?.message}`);
    return body.address;
  };
  const viaCli = async (vif: string): Promise<string> => JSON.parse(await cli(storeUrl, '--json', 'ip', 'allocate', '--vif', vif)).address as string;
  const modes: Array<{ agent: string; waitMs: number; full?: boolean; allocation: string; alloc: (vif: string) => Promise<string>; samples: number }> = [
    { agent: 'long-poll, deltas (this design)', waitMs: 25_000, allocation: 'server HTTP API', alloc: viaApi, samples: SAMPLES },
    { agent: 'long-poll, full snapshots', waitMs: 25_000, full: true, allocation: 'server HTTP API', alloc: viaApi, samples: SAMPLES },
    ...(kind === 'sqlite' ? [{ agent: 'long-poll, deltas (this design)', waitMs: 25_000, allocation: 'another process (CLI)', alloc: viaCli, samples: SAMPLES }] : []),
    { agent: 'polling every 5 s', waitMs: 0, allocation: 'server HTTP API', alloc: viaApi, samples: Math.max(4, Math.round(SAMPLES / 5)) },
  ];
  try {
    for (const m of modes) {
      const seen = new Map<string, number>();
      const arrived = new Map<string, number>();
      const http = new HttpControlPlane({ servers: [url], tokenFile });
      const agent = new Agent({
        host,
        controlPlane: timed(m.full ? snapshotsOnly(http) : http, arrived),
        local: openHostState(join(dir, `state-${kind}-${n++}`)),
        runner,
        intervalMs: 0,
        waitMs: m.waitMs,
        pollMs: 5000,
        interfaceExists: async () => true,
        log: (msg) => {
          for (const ip of msg.match(/10\.80\.\d+\.\d+/g) ?? []) if (!seen.has(ip)) seen.set(ip, performance.now());
        },
      });
      const ac = new AbortController();
      const run = agent.run(ac.signal);
      await agent.ready;
      await sleep(1500);
      const times: number[] = [];
      const toAgent: number[] = [];
      const request: number[] = [];
      // three untimed rounds first (long-poll modes): the first mode measured must not pay for a cold server
      for (let i = m.waitMs ? -3 : 0; i < m.samples; i++) {
        const t0 = performance.now();
        const ip = await m.alloc(`vm${(i + 50) % 50}:0`);
        request.push(performance.now() - t0);
        while (!seen.has(ip)) await sleep(1);
        if (i >= 0) {
          times.push(seen.get(ip)! - t0);
          toAgent.push((arrived.get(ip) ?? NaN) - t0);
        } else request.pop();
        // random phase against the poll interval
        await sleep(100 + Math.random() * 400);
      }
      rows.push({ store: kind === 'sqlite' ? 'SQLite' : 'PostgreSQL', allocation: m.allocation, agent: `${m.agent} (${agent.received.delta} deltas, ${agent.received.snapshot} snapshots)`, times, toAgent, request });
      ac.abort();
      await run;
      await agent.teardown();
      http.close();
    }
  } finally {
    await stopServer(server);
  }
}

async function latency(): Promise<void> {
  const ns = `ivb${Math.random().toString(16).slice(2, 6)}`;
  execFileSync('ip', ['netns', 'add', ns]);
  process.env.IPVISOR_RUN_DIR = join(dir, 'run');
  const rows: LatencyRow[] = [];
  let pg: PostgresServer | undefined;
  try {
    await latencyOn('sqlite', `sqlite:${join(dir, 'lat.db')}`, ns, rows);
    if (!postgresSkip()) {
      pg = await startPostgres({ durable: true });
      await latencyOn('postgres', await pg.newDatabase(), ns, rows);
    } else console.log('(PostgreSQL is not installed: its rows are skipped)');
    console.log('\n## change-to-enforced on a remote agent (ipvisor server process, agent over HTTP on loopback; allocation request -> nft transaction done)\n');
    console.log('| store | allocation by | agent | samples | p50 | p95 | of which until the answer reached the agent: p50 / p95 | the allocation request answered: p50 |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.store} | ${r.allocation} | ${r.agent} | ${r.times.length} | ${fmt(pct(r.times, 50))} | ${fmt(pct(r.times, 95))} | ${fmt(pct(r.toAgent, 50))} / ${fmt(pct(r.toAgent, 95))} | ${fmt(pct(r.request, 50))} |`);
  } finally {
    await pg?.stop();
    try {
      execFileSync('ip', ['netns', 'exec', ns, 'nft', 'flush', 'ruleset']);
    } catch {
      /* nothing there */
    }
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

function procStats(pid: number): { rssKiB: number; cpuTicks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { rssKiB: rss, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

async function fanout(): Promise<void> {
  const db = `sqlite:${join(dir, 'fan.db')}`;
  await cli(db, 'init');
  await cli(db, 'network', 'create', 'lan', '--bridge', 'br0', '--subnet', '10.90.0.0/16');
  await cli(db, 'pool', 'create', 'p', '--network', 'lan', '--cidr', '10.90.0.0/16');
  const store = await openStore(db);
  const tokens: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const { token } = await addHost(store, `h${i}`, 'bench');
    const f = join(dir, `t${i}`);
    writeFileSync(f, token, { mode: 0o600 });
    tokens.push(f);
  }
  // each host runs VMS_PER_HOST VMs with a VIF and an address: its slice, what a snapshot carries
  const seeded = performance.now();
  await store.transaction(async () => {
    for (let i = 0; i < AGENTS; i++) {
      for (let j = 0; j < VMS_PER_HOST; j++) {
        const name = `h${i}v${j}`;
        await createVm(store, { name, host: `h${i}` }, 'bench');
        const n = i * VMS_PER_HOST + j;
        await addVif(store, { vm: name, network: 'lan', mac: `52:54:01:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`, ifname: `t${n}` }, 'bench');
        await allocate(store, { vif: `${name}:0` }, 'bench');
      }
    }
  }, { write: true });
  const seedSeconds = (performance.now() - seeded) / 1000;
  await store.close();
  await cli(db, 'vm', 'add', 'one', '--host', 'h0');
  await cli(db, 'vif', 'add', 'one', '--network', 'lan', '--mac', '52:54:00:90:00:01');
  const port = 18000 + Math.floor(Math.random() * 1000);
  const server = await startServer(db, port);
  const idle = procStats(server.pid!);
  const clients = tokens.map((t) => new HttpControlPlane({ servers: [`http://127.0.0.1:${port}`], tokenFile: t, timeoutMs: 60_000 }));
  // each simulated agent keeps its copy and verifies deltas as the agent does
  const copies: DesiredState[] = [];
  await Promise.all(clients.map(async (c, i) => {
    const a = await c.desiredState(`h${i}`);
    if (a.kind === 'snapshot') copies[i] = a.state;
  }));
  let mode: 'delta' | 'full' = 'delta';
  let change = -1;
  let t0 = 0;
  const answeredChange = new Array<number>(AGENTS).fill(-1);
  const latencies: number[][] = [];
  const bytes: number[] = [];
  let mismatches = 0;
  const ac = new AbortController();
  setMaxListeners(AGENTS * 2, ac.signal);
  const loops = clients.map(async (c, i) => {
    while (!ac.signal.aborted) {
      const copy = copies[i];
      const q = mode === 'delta' ? { digest: copy.digest, revision: copy.revision, storeIdentity: copy.storeIdentity } : { digest: copy.digest };
      let a: DesiredAnswer;
      try {
        a = await c.desiredState(`h${i}`, { ...q, waitMs: 30_000, signal: ac.signal });
      } catch {
        if (ac.signal.aborted) return;
        await sleep(500);
        continue;
      }
      // when the answer arrived (before this simulated agent's own work on it)
      const at = performance.now();
      if (a.kind === 'unchanged' || a.kind === 'removed') continue;
      if (a.kind === 'snapshot') copies[i] = a.state;
      else {
        const next = applyDelta(copy, a.delta);
        if (desiredDigest(next) === a.delta.digest) copies[i] = next;
        else {
          mismatches++;
          const full = await c.desiredState(`h${i}`, { full: true });
          if (full.kind === 'snapshot') copies[i] = full.state;
        }
      }
      if (change >= 0 && answeredChange[i] < change) {
        answeredChange[i] = change;
        bytes[change] = (bytes[change] ?? 0) + JSON.stringify(a).length;
        latencies[change].push(at - t0);
      }
    }
  });
  const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const cpuAt: number[] = [];
  const cpuUsed: number[] = [];
  const next = (): number => {
    latencies[++change] = [];
    cpuAt[change] = procStats(server.pid!).cpuTicks;
    t0 = performance.now();
    return change;
  };
  const allAnswered = async (k: number) => {
    const end = Date.now() + 60_000;
    while (latencies[k].length < AGENTS && Date.now() < end) await sleep(20);
    cpuUsed[k] = (procStats(server.pid!).cpuTicks - cpuAt[k]) / hz;
  };
  await sleep(3000);
  const before = procStats(server.pid!);
  await sleep(10_000);
  const after = procStats(server.pid!);
  const cpuAtRest = ((after.cpuTicks - before.cpuTicks) / hz / 10) * 100;
  // one VIF change: only h0's agent wakes
  const oneVif = next();
  await cli(db, 'ip', 'allocate', '--vif', 'one:0');
  await sleep(2000);
  // a change every host sees, alternately with deltas and with full snapshots (the answers to the
  // change after a switch still follow the old mode: those polls were asked before it)
  const byMode: Record<'delta' | 'full', number[]> = { delta: [], full: [] };
  const plan: Array<'delta' | 'full'> = ['delta', 'delta', 'full', 'full', 'delta'];
  for (let k = 0; k < plan.length; k++) {
    mode = plan[k + 1] ?? plan[k];
    const c = next();
    await cli(db, 'network', 'set', 'lan', '--mtu', String(1300 + k * 10));
    await allAnswered(c);
    byMode[plan[k]].push(c);
    await sleep(500);
  }
  const peak = procStats(server.pid!);
  ac.abort();
  await Promise.all(loops);
  const line = (xs: number[], k: number) => `${xs.length} agents: p50 ${fmt(pct(xs, 50))}, p95 ${fmt(pct(xs, 95))}, last ${fmt(Math.max(...xs))}; ${((bytes[k] ?? 0) / 1024).toFixed(0)} KiB of answers, server CPU ${((cpuUsed[k] ?? NaN) * 1000).toFixed(0)} ms`;
  console.log(`\n## ${AGENTS} agents long-polling one \`ipvisor server\` (SQLite store, ${VMS_PER_HOST} VMs with an address per host, seeded in ${seedSeconds.toFixed(0)} s; loopback; changes by the CLI, another process)\n`);
  console.log('| figure | value |');
  console.log('|---|---|');
  console.log(`| server RSS before agents connect | ${(idle.rssKiB / 1024).toFixed(0)} MiB |`);
  console.log(`| server RSS with ${AGENTS} agents waiting | ${(after.rssKiB / 1024).toFixed(0)} MiB (after the fan-outs: ${(peak.rssKiB / 1024).toFixed(0)} MiB) |`);
  console.log(`| server CPU at rest (10 s, ${AGENTS} agents waiting) | ${cpuAtRest.toFixed(1)} % of one core |`);
  console.log(`| one VIF change: agents woken | ${latencies[oneVif].length} of ${AGENTS} (latency ${fmt(latencies[oneVif][0] ?? NaN)}) |`);
  for (const k of byMode.delta) console.log(`| a network change, deltas (this design) | ${line(latencies[k], k)} |`);
  for (const k of byMode.full) console.log(`| a network change, full snapshots | ${line(latencies[k], k)} |`);
  console.log(`| deltas that did not verify | ${mismatches} |`);
  for (const c of clients) c.close();
  await stopServer(server);
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
try {
  if (only !== 'fanout') {
    if (process.getuid?.() === 0) await latency();
    else console.log('(change-to-enforced latency needs root for its network namespace; skipped)');
  }
  if (only !== 'latency') await fanout();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
