// Wall time of one libvirt hook call as libvirt makes it: a fresh process (Node start-up included),
// argv + XML on stdin, the environment libvirt gives hooks (LC_ALL, PATH, HOME), inside a network
// namespace this benchmark creates (so the nft/ip work is real but touches nothing else).
// Two operations: `network port-created` (libvirtd restart replay: the tap is known, the VIF is
// re-applied) and `qemu started` (tap recorded and applied). Side by side: the Node start-up floor,
// a shell hook that only drains stdin (what the reference logging hook does), the same hook run
// unbundled through tsx (why the hook has its own bundled entry), and `qemu started` on an agent
// host: the small entry handing the call to a local agent (running in this process) over its Unix
// socket, and the same with no agent answering (the whole hook enforces from the local copy).
//   node --import tsx bench/hooks/run.ts [iterations]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/core/store/open.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { createVm, addVif } from '../../src/core/service/vms.js';
import { createPool } from '../../src/core/service/pools.js';
import { allocate } from '../../src/core/service/ip.js';
import { packageRoot } from '../../src/agent/libvirt/install.js';
import { pathToFileURL } from 'node:url';
import { buildHookBundle } from '../../test/support/libvirt/bundle.js';
import { Agent } from '../../src/agent/agent.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { serveLocalSocket, writeAgentMarker } from '../../src/agent/local-socket.js';
import { openHostState } from '../../src/agent/state.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import { loadSnapshot } from '../../src/core/model/snapshot.js';
import type { ControlPlane } from '../../src/core/control-plane.js';

const N = Number(process.argv[2] ?? 40);
const NS = 'ipv-bench-hooks';
const root = packageRoot();
const FIX = join(root, 'test', 'libvirt', 'fixtures');
const DOM = '3aaa57e8-1e22-4bff-9586-6a05259a2f80';
const PORT = '719654f5-613c-4b78-9995-53b7660e6ee5';

function fixture(name: string, tap = 'vnet2'): string {
  return readFileSync(join(FIX, name), 'utf8')
    .replaceAll('8c2a3b9e-0000-4000-8000-00000000d001', DOM)
    .replace(/portid='[0-9a-f-]+'/g, `portid='${PORT}'`)
    .replace(/<target dev='vnet\d+'\/>/g, `<target dev='${tap}'/>`);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

const libvirtEnv = (extra: NodeJS.ProcessEnv = {}) => ({ LC_ALL: 'C', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', ...extra });

function time(argv: string[], input: string, env: NodeJS.ProcessEnv): number {
  const t = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', NS, ...argv], { input, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: exit ${r.status}: ${r.stderr}`);
  if (r.stdout.length) throw new Error(`${argv.join(' ')} printed on stdout: ${r.stdout}`);
  return ms;
}

/** time() without blocking this process's event loop (the agent answering the hook runs in it). */
function timeAsync(argv: string[], input: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    const child = spawn('ip', ['netns', 'exec', NS, ...argv], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (code !== 0) reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`));
      else if (out.length) reject(new Error(`${argv.join(' ')} printed on stdout: ${out}`));
      else resolve(ms);
    });
    child.stdin.end(input);
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('bench/hooks: needs root (network namespace); skipped');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'ipv-bench-hooks-'));
  const db = join(work, 'ipvisor.db');
  const log = join(work, 'hooks.log');
  spawnSync('ip', ['netns', 'del', NS]);
  execFileSync('ip', ['netns', 'add', NS]);
  try {
    const store = await openStore(db, { create: true });
    const net = await createNetwork(store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', bridge: 'virbrT0', subnets: ['192.168.100.0/24,gateway=192.168.100.1'], extra: { libvirtName: 'lvnat', libvirtUuid: 'fb2da05d-7e6c-41e1-bd0b-a277dd20526e' } }, 'bench');
    await createPool(store, { name: 'lvnat-v4', network: net.uuid, ranges: ['192.168.100.2-192.168.100.127'] }, 'bench');
    await createVm(store, { name: 'lvdom1', uuid: DOM }, 'bench');
    await addVif(store, { vm: 'lvdom1', network: 'lvnat', mac: '52:54:00:12:34:56', device: 0, ifname: 'vnet2' }, 'bench');
    await allocate(store, { vif: 'lvdom1:0' }, 'bench');
    await store.close();

    const bundle = await buildHookBundle();
    const node = process.execPath;
    const env = libvirtEnv({ IPVISOR_RUN_DIR: join(work, 'run'), IPVISOR_HOOK_TIMING: '1' });
    const hook = (kind: string, entry: string, nodeArgs: string[] = []) => [node, ...nodeArgs, entry, `libvirt-${kind}`, '--db', db, '--log', log, '--'];
    const shellHook = join(work, 'drain.sh');
    writeFileSync(shellHook, '#!/bin/sh\ncat >/dev/null\nexit 0\n');
    chmodSync(shellHook, 0o755);
    const src = { nodeArgs: ['--import', pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href] };
    const srcEntry = join(root, 'src', 'agent', 'libvirt', 'hook-main.ts');

    // Seed: first started creates ipvisor's nft tables (full apply); then record the tap for port-created.
    time([...hook('qemu', bundle), 'lvdom1', 'started', 'begin', '-'], fixture('qemu-lvdom1-started-begin.xml', 'vnet2'), env);
    time([...hook('qemu', bundle), 'lvdom1', 'started', 'begin', '-'], fixture('qemu-lvdom1-started-begin.xml', 'vnet3'), env);

    const rows: Array<[string, number[]]> = [];
    const measure = (label: string, fn: (i: number) => number) => {
      const xs: number[] = [];
      for (let i = 0; i < N; i++) xs.push(fn(i));
      rows.push([label, xs]);
    };
    measure('node -e 0 (start-up floor)', () => time([node, '-e', '0'], '', env));
    measure('sh hook draining stdin (reference loghook)', () => time([shellHook, 'lvnat', 'port-created', 'begin', '-'], fixture('network-lvnat-port-created-begin.xml'), env));
    measure('ipvisor port-created (bundle)', () => time([...hook('network', bundle), 'lvnat', 'port-created', 'begin', '-'], fixture('network-lvnat-port-created-begin.xml'), env));
    // Alternate the tap so that every started call records a change and applies it.
    measure('ipvisor started (bundle)', (i) => time([...hook('qemu', bundle), 'lvdom1', 'started', 'begin', '-'], fixture('qemu-lvdom1-started-begin.xml', i % 2 ? 'vnet3' : 'vnet2'), env));
    const M = Math.max(5, Math.floor(N / 4));
    const xsSrc: number[] = [];
    for (let i = 0; i < M; i++) xsSrc.push(time([...hook('qemu', srcEntry, src.nodeArgs), 'lvdom1', 'started', 'begin', '-'], fixture('qemu-lvdom1-started-begin.xml', i % 2 ? 'vnet2' : 'vnet3'), env));
    rows.push(['ipvisor started (unbundled, tsx)', xsSrc]);

    // An agent host: the same VM in the agent's copy, the agent in this process (its nft in the
    // namespace), its marker and socket where the hook looks for them.
    const agentState = join(work, 'agent-state');
    const agentRun = join(work, 'agent-run');
    const agentEnv = libvirtEnv({ IPVISOR_RUN_DIR: agentRun, IPVISOR_STATE_DIR: agentState, IPVISOR_HOOK_TIMING: '1' });
    const seeded = await openStore(db);
    const snapshot = await loadSnapshot(seeded);
    await seeded.close();
    const host = 'bench-agent-host';
    snapshot.vms = snapshot.vms.map((v) => ({ ...v, host }));
    const desired = { host, snapshot, settings: {} };
    const idle: ControlPlane = {
      desiredState: (_h, q) => new Promise((_r, reject) => q?.signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true })),
      async reportApplied() {},
      async reportFacts() {},
    };
    const savedRun = process.env.IPVISOR_RUN_DIR;
    process.env.IPVISOR_RUN_DIR = agentRun;
    const agent = new Agent({ host, controlPlane: idle, local: openHostState(agentState), log: () => undefined, runner: createHostRunner({ netns: NS }), intervalMs: 0, interfaceExists: async () => true });
    agent.accept({ ...desired, storeIdentity: 'bench', revision: 1, digest: desiredDigest(desired) });
    const stop = new AbortController();
    const running = agent.run(stop.signal);
    await agent.ready;
    writeAgentMarker({ host, servers: [], stateDir: agentState });
    const server = await serveLocalSocket(agent, join(agentRun, 'agent.sock'));
    const agentHook = (i: number) => timeAsync([...hook('qemu', bundle), 'lvdom1', 'started', 'begin', '-'], fixture('qemu-lvdom1-started-begin.xml', i % 2 ? 'vnet3' : 'vnet2'), agentEnv);
    const measureAsync = async (label: string, fn: (i: number) => Promise<number>) => {
      const xs: number[] = [];
      for (let i = 0; i < N; i++) xs.push(await fn(i));
      rows.push([label, xs]);
    };
    try {
      await measureAsync('ipvisor started, agent host: small entry -> local agent', agentHook);
    } finally {
      await new Promise((r) => server.close(r));
      stop.abort();
      await running.catch(() => undefined);
      if (savedRun === undefined) delete process.env.IPVISOR_RUN_DIR;
      else process.env.IPVISOR_RUN_DIR = savedRun;
    }
    await measureAsync('ipvisor started, agent host, no agent answering (whole hook, local copy)', (i) => agentHook(i + 1));
    const hookLines = readFileSync(log, 'utf8').split('\n').filter((l) => /handed to the local agent/.test(l)).length;
    if (hookLines < N) throw new Error(`only ${hookLines} of ${N} agent-host hook calls were handed to the agent`);

    const w = Math.max(...rows.map(([l]) => l.length));
    console.log(`libvirt hook wall time, ${N} calls each (tsx: ${M}), Node ${process.version}, incl. 'ip netns exec' (~2 ms)`);
    console.log(`${'hook'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p95 ms'.padStart(8)}`);
    for (const [label, xs] of rows) console.log(`${label.padEnd(w)}  ${percentile(xs, 50).toFixed(1).padStart(8)}  ${percentile(xs, 95).toFixed(1).padStart(8)}`);
    // Where the time goes (IPVISOR_HOOK_TIMING lines of the timed bundle calls), medians.
    const logText = readFileSync(log, 'utf8');
    const med = (re: RegExp) => {
      const xs = [...logText.matchAll(re)].map((m) => Number(m[1]));
      return xs.length ? percentile(xs, 50).toFixed(1) : '-';
    };
    console.log(`breakdown (medians over all bundle calls): start-up+module load ${med(/start-up\+load ([\d.]+) ms/g)} ms, store open ${med(/store open ([\d.]+) ms/g)} ms, host apply ${med(/apply ([\d.]+) ms/g)} ms, whole hook after stdin ${med(/hook ([\d.]+) ms/g)} ms`);
    console.log(`agent host (medians over the small entry's calls): entry up after stdin ${med(/entry up after ([\d.]+) ms/g)} ms, agent's answer ${med(/agent answered in ([\d.]+) ms/g)} ms`);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`load average during the run: ${load} (2 cores)`);
    const errors = logText.split('\n').filter((l) => /error|failed/.test(l) && !/timing:/.test(l));
    if (errors.length) console.log(`hook log reported problems:\n${errors.slice(0, 5).join('\n')}`);
  } finally {
    spawnSync('ip', ['netns', 'del', NS]);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
