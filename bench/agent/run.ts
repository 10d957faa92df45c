// Control plane and agents, side by side in one run (root: a network namespace for the agent's host):
//   1. change-to-enforced latency on a remote agent (HTTP long-poll) against a 5 s polling agent:
//      allocation committed on the server until the agent's nft transaction is in the kernel.
//   2. 500 simulated agents long-polling one `ipvisor server` process: server RSS and CPU at rest,
//      fan-out latency of a change every host sees (a network) and of one VIF change (one host).
//   node --import tsx bench/agent/run.ts [--agents 500] [--samples 20]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { openHostState } from '../../src/agent/state.js';
import { setThisHost } from '../../src/core/host-identity.js';
import { openStore } from '../../src/core/store/open.js';
import { agentRoutes } from '../../src/server/agent-http.js';
import { StoreControlPlane } from '../../src/server/control-plane.js';
import { startHttpServer } from '../../src/server/http.js';
import { addHost } from '../../src/server/hosts.js';
import { runCli } from '../../src/cli/main.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const AGENTS = arg('agents', 500);
const SAMPLES = arg('samples', 20);
const dir = mkdtempSync(join(tmpdir(), 'ipv-bench-agent-'));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const fmt = (x: number) => `${x.toFixed(1)} ms`;
const cli = async (db: string, ...args: string[]) => {
  let out = '';
  const code = await runCli(['--db', db, ...args], { stdout: (s) => (out += s), stderr: () => undefined, env: { ...process.env, IPVISOR_ACTOR: 'bench' } });
  if (code !== 0) throw new Error(`ipvisor ${args.join(' ')} failed`);
  return out;
};

async function latency(): Promise<void> {
  const ns = `ivb${Math.random().toString(16).slice(2, 6)}`;
  execFileSync('ip', ['netns', 'add', ns]);
  process.env.IPVISOR_RUN_DIR = join(dir, 'run');
  const db = join(dir, 'lat.db');
  try {
    await cli(db, 'init');
    await cli(db, 'network', 'create', 'lan', '--bridge', 'br0', '--subnet', '10.80.0.0/16', '--default-locking', 'locked');
    await cli(db, 'pool', 'create', 'p', '--network', 'lan', '--cidr', '10.80.0.0/16');
    const host = 'bench-host';
    setThisHost(host);
    for (let i = 0; i < 50; i++) {
      await cli(db, 'vm', 'add', `vm${i}`, '--host', host);
      await cli(db, 'vif', 'add', `vm${i}`, '--network', 'lan', '--mac', `52:54:00:80:00:${i.toString(16).padStart(2, '0')}`);
      await cli(db, 'vif', 'bind', `vm${i}:0`, '--ifname', `vnet${i}`);
    }
    const store = await openStore(db);
    const { token } = await addHost(store, host, 'bench');
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const cp = new StoreControlPlane(store, { requireRegistration: true });
    const http = await startHttpServer({ store, listen: '127.0.0.1:0', plugins: [{ plugin: agentRoutes as never, options: { controlPlane: cp, version: 'bench' } }] });
    const runner = createHostRunner({ netns: ns });
    const results: Record<string, number[]> = {};
    for (const [label, waitMs] of [['long-poll (this design)', 25_000], ['polling every 5 s', 0]] as const) {
      const seen = new Map<string, number>();
      const agent = new Agent({
        host,
        controlPlane: new HttpControlPlane({ servers: [http.url], tokenFile }),
        local: openHostState(join(dir, `state-${waitMs}`)),
        runner,
        intervalMs: 0,
        waitMs,
        pollMs: 5000,
        log: (m) => {
          for (const ip of m.match(/10\.80\.\d+\.\d+/g) ?? []) if (!seen.has(ip)) seen.set(ip, performance.now());
        },
      });
      const ac = new AbortController();
      const run = agent.run(ac.signal);
      await agent.ready;
      await new Promise((r) => setTimeout(r, 1500));
      const times: number[] = [];
      const n = waitMs ? SAMPLES : Math.max(5, Math.round(SAMPLES / 3));
      for (let i = 0; i < n; i++) {
        const vm = `vm${i % 50}`;
        const t0 = performance.now();
        const out = JSON.parse(await cli(db, '--json', 'ip', 'allocate', '--vif', `${vm}:0`));
        const ip = out.address as string;
        while (!seen.has(ip)) await new Promise((r) => setTimeout(r, 2));
        times.push(seen.get(ip)! - t0);
        // random phase against the poll interval
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
      }
      results[label] = times;
      ac.abort();
      await run;
    }
    console.log('\n## change-to-enforced on a remote agent (HTTP, loopback; allocation committed -> nft transaction done)\n');
    console.log('| agent | samples | p50 | p95 |');
    console.log('|---|---|---|---|');
    for (const [label, t] of Object.entries(results)) console.log(`| ${label} | ${t.length} | ${fmt(pct(t, 50))} | ${fmt(pct(t, 95))} |`);
    cp.close();
    await http.close();
    await store.close();
  } finally {
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
  const db = join(dir, 'fan.db');
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
  await store.close();
  await cli(db, 'vm', 'add', 'one', '--host', 'h0');
  await cli(db, 'vif', 'add', 'one', '--network', 'lan', '--mac', '52:54:00:90:00:01');
  const port = 18000 + Math.floor(Math.random() * 1000);
  const server = spawn(process.execPath, ['--import', 'tsx', resolve('src/cli/entry.ts'), '--db', db, 'server', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IPVISOR_RUN_DIR: join(dir, 'srv-run') } });
  let log = '';
  server.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  while (!log.includes('listening on')) await new Promise((r) => setTimeout(r, 100));
  const idle = procStats(server.pid!);
  const clients = tokens.map((t) => new HttpControlPlane({ servers: [`http://127.0.0.1:${port}`], tokenFile: t, timeoutMs: 60_000 }));
  const digests: string[] = [];
  await Promise.all(clients.map(async (c, i) => {
    const a = await c.desiredState(`h${i}`);
    digests[i] = a.kind === 'snapshot' ? a.state.digest : '';
  }));
  // everyone waits
  const woken: number[] = new Array(AGENTS).fill(0);
  let waiting: Array<Promise<void>> = [];
  const arm = () => {
    waiting = clients.map(async (c, i) => {
      const a = await c.desiredState(`h${i}`, { digest: digests[i], waitMs: 30_000 });
      if (a.kind === 'snapshot') {
        digests[i] = a.state.digest;
        woken[i] = performance.now();
      }
    });
  };
  arm();
  await new Promise((r) => setTimeout(r, 3000));
  const before = procStats(server.pid!);
  await new Promise((r) => setTimeout(r, 10_000));
  const after = procStats(server.pid!);
  const hz = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  const cpuAtRest = ((after.cpuTicks - before.cpuTicks) / hz / 10) * 100;
  // one VIF change: only h0 wakes
  woken.fill(0);
  let t0 = performance.now();
  await cli(db, 'ip', 'allocate', '--vif', 'one:0');
  await new Promise((r) => setTimeout(r, 2000));
  const oneVifWoken = woken.filter((w) => w > 0).length;
  const oneVifLatency = woken[0] ? woken[0] - t0 : NaN;
  await waiting[0];
  waiting[0] = (async () => {
    const a = await clients[0].desiredState('h0', { digest: digests[0], waitMs: 30_000 });
    if (a.kind === 'snapshot') (digests[0] = a.state.digest), (woken[0] = performance.now());
  })();
  // a change every host sees: all wake
  woken.fill(0);
  t0 = performance.now();
  await cli(db, 'network', 'set', 'lan', '--mtu', '1400');
  await Promise.all(waiting);
  const lat = woken.filter((w) => w > 0).map((w) => w - t0);
  const peak = procStats(server.pid!);
  console.log(`\n## ${AGENTS} agents long-polling one server (SQLite store, loopback)\n`);
  console.log('| figure | value |');
  console.log('|---|---|');
  console.log(`| server RSS before agents connect | ${(idle.rssKiB / 1024).toFixed(0)} MiB |`);
  console.log(`| server RSS with ${AGENTS} agents waiting | ${(after.rssKiB / 1024).toFixed(0)} MiB (after the fan-out: ${(peak.rssKiB / 1024).toFixed(0)} MiB) |`);
  console.log(`| server CPU at rest (10 s, ${AGENTS} agents waiting) | ${cpuAtRest.toFixed(1)} % of one core |`);
  console.log(`| one VIF change: agents woken | ${oneVifWoken} of ${AGENTS} (latency ${fmt(oneVifLatency)}) |`);
  console.log(`| a network change: all ${lat.length} agents have the new state | p50 ${fmt(pct(lat, 50))}, p95 ${fmt(pct(lat, 95))}, last ${fmt(Math.max(...lat))} |`);
  for (const c of clients) c.close();
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
}

try {
  if (process.getuid?.() === 0) await latency();
  else console.log('(change-to-enforced latency needs root for its network namespace; skipped)');
  await fanout();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
