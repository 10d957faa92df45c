// The small hook entry on an agent host (dist/libvirt-hook.cjs, Node built-ins only): run as libvirt
// runs it, it hands argv + domain XML to the local agent over its socket, the agent parses and
// checks the XML and enforces; with no agent answering, the entry loads the whole hook
// (libvirt-hook-full.cjs), which enforces from the local copy. Real nft in a namespace this test
// creates and removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent } from '../../src/agent/agent.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { nftObserve } from '../../src/agent/host/nft.js';
import { serveLocalSocket, writeAgentMarker, agentSocketPath } from '../../src/agent/local-socket.js';
import { closeHostStates, openHostState } from '../../src/agent/state.js';
import { desiredDigest } from '../../src/core/compile/host-desired.js';
import type { ControlPlane } from '../../src/core/control-plane.js';
import { assign, emptySnapshot, network, pool, vif, vm } from '../compile/fixtures.js';
import { netnsSkipReason, sh } from '../support/netns.js';
import { buildHookBundle } from '../support/libvirt/bundle.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const HOST = 'hook-host';
const skip = await netnsSkipReason();

const idle: ControlPlane = {
  desiredState: (_h, q) => new Promise((_r, reject) => q?.signal?.addEventListener('abort', () => reject(new Error('stopped')), { once: true })),
  async reportApplied() {},
  async reportFacts() {},
};

function domainXml(name: string, uuid: string, ifaces: Array<{ mac: string; dev: string }>): string {
  const i = ifaces.map((f) => `<interface type='bridge'><mac address='${f.mac}'/><source bridge='br0'/><target dev='${f.dev}'/></interface>`).join('');
  return `<domain type='kvm' id='1'><name>${name}</name><uuid>${uuid}</uuid><devices>${i}</devices></domain>`;
}

test('agent host: the small hook entry hands the XML to the agent; without an agent the whole hook enforces from the copy', { skip }, async () => {
  const ns = `iv${randomBytes(3).toString('hex')}hk`;
  const dir = mkdtempSync(join(tmpdir(), 'ipv-agenthook-'));
  const saved = { run: process.env.IPVISOR_RUN_DIR };
  const runDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  process.env.IPVISOR_RUN_DIR = runDir;
  await sh(['ip', 'netns', 'add', ns]);
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  let server: import('node:net').Server | undefined;
  try {
    const runner = createHostRunner({ netns: ns });
    const s = emptySnapshot();
    const net = network({ name: 'lan', bridge: 'br0', mode: 'isolated', defaultLocking: 'locked' });
    const p4 = pool(net, { family: 4 });
    s.networks.push(net);
    s.pools.push(p4);
    const m = { ...vm('d1'), host: HOST };
    s.vms.push(m);
    const f = vif(m, net, { mac: '52:54:00:00:03:01', device: 0 });
    s.vifs.push(f);
    s.assignments.push(assign(f, p4, '10.33.0.1'));
    const d = { host: HOST, snapshot: s, settings: {} };
    const log: string[] = [];
    const agent = new Agent({ host: HOST, controlPlane: idle, local: openHostState(stateDir), log: (l) => log.push(l), runner, intervalMs: 0, interfaceExists: async () => false });
    agent.accept({ ...d, storeIdentity: 'test-store', revision: 1, digest: desiredDigest(d) });
    running = agent.run(stop.signal);
    await agent.ready;
    writeAgentMarker({ host: HOST, servers: [], stateDir });
    server = await serveLocalSocket(agent, agentSocketPath());

    // the small entry alone, without the whole hook beside it: anything it would load fails
    const full = await buildHookBundle();
    const alone = join(dir, 'alone', 'libvirt-hook.cjs');
    mkdirSync(dirname(alone), { recursive: true });
    copyFileSync(full, alone);
    const hookLog = join(dir, 'hooks.log');
    const hook = (entry: string, op: string, xml: string) =>
      new Promise<void>((res, rej) => {
        const env = { LC_ALL: 'C', PATH: process.env.PATH, IPVISOR_STATE_DIR: stateDir, IPVISOR_RUN_DIR: runDir };
        const child = spawn('ip', ['netns', 'exec', ns, process.execPath, entry, 'libvirt-qemu', '--log', hookLog, '--', 'd1', op, 'begin', '-'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (b) => (out += b));
        child.stderr.on('data', (b) => (out += b));
        child.on('exit', (code) => (code === 0 && !out ? res() : rej(new Error(`hook ${op}: exit ${code}: ${out}`))));
        child.stdin.end(xml);
      });
    const ip4 = async () => (await nftObserve(runner, ['bridge'])).elements.bridge.vif_ip4;
    const lines = () => readFileSync(hookLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l).msg as string);

    await hook(alone, 'started', domainXml('d1', m.uuid, [{ mac: '52:54:00:00:03:01', dev: 'tapa' }]));
    assert.deepEqual(await ip4(), ['"tapa" . 10.33.0.1'], 'the agent enforced the binding');
    assert.match(lines().at(-1)!, /qemu d1 started: handed to the local agent \(\d+ change\(s\)\)/);

    // the agent checks what the XML says, as every entry point does: an invalid MAC binds nothing
    await hook(alone, 'started', domainXml('d1', m.uuid, [{ mac: '52:54:00:00:03:zz', dev: 'tapb' }]));
    assert.ok(lines().some((l) => /invalid fact: .*mac/i.test(l)), lines().join('\n'));
    assert.deepEqual(await ip4(), ['"tapa" . 10.33.0.1']);
    // XML that does not parse: logged, nothing changed, no fallback
    await hook(alone, 'started', '<domain><name>d1</name');
    assert.match(lines().at(-1)!, /qemu .* started: error: /);
    assert.deepEqual(await ip4(), ['"tapa" . 10.33.0.1']);

    // no agent answers: the whole hook (beside the entry) enforces from the local copy
    await new Promise((r) => server!.close(r));
    server = undefined;
    await hook(full, 'started', domainXml('d1', m.uuid, [{ mac: '52:54:00:00:03:01', dev: 'tapc' }]));
    assert.match(lines().at(-1)!, /no local agent answered; enforced from the local copy/);
    assert.deepEqual(await ip4(), ['"tapc" . 10.33.0.1']);
    // the whole hook missing beside the entry: said in the log, exit 0 (as the script does for a missing entry)
    await hook(alone, 'started', domainXml('d1', m.uuid, [{ mac: '52:54:00:00:03:01', dev: 'tapd' }]));
    assert.match(lines().at(-1)!, /libvirt-hook-full\.cjs cannot be loaded .*nothing enforced/);
  } finally {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    stop.abort();
    await running?.catch(() => undefined);
    closeHostStates();
    await sh(['ip', 'netns', 'del', ns], { allowFail: true });
    if (saved.run === undefined) delete process.env.IPVISOR_RUN_DIR;
    else process.env.IPVISOR_RUN_DIR = saved.run;
    rmSync(dir, { recursive: true, force: true });
  }
});
