// The dom0 binder against the XAPI simulator, with dom0 and the firewall VM as network namespaces
// this test creates: the simulator "starts" the VM, the test creates its bridge (as XAPI would), and
// the binder must add the address, narrow the management address, add the default route, reach
// the NFS server through the VM and re-plug the NFS PBD.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHostRunner, type HostRunner } from '../../src/agent/host/exec.js';
import { Dom0Binder } from '../../src/agent/dom0/binder.js';
import { parseDom0Config } from '../../src/agent/dom0/config.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { skipUnless } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const root = process.getuid?.() === 0;
const ipOk = await createHostRunner({ netns: undefined })
  .run(['ip', '-V'], { allowFail: true })
  .then((r) => r.code === 0)
  .catch(() => false);
const skip = skipUnless(!root ? 'needs root (network namespaces)' : !ipOk ? 'iproute2 (ip) not installed' : false);

const tag = `${process.pid % 100000}`;
const NS_DOM0 = `ipvx-d0-${tag}`;
const NS_FW = `ipvx-fw-${tag}`;
const host = createHostRunner({ netns: undefined });
const dom0 = createHostRunner({ netns: NS_DOM0 });
const fw = createHostRunner({ netns: NS_FW });
const tmp = mkdtempSync(join(tmpdir(), 'ipvx-dom0-'));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const addrs = async (r: HostRunner, dev: string): Promise<string> => (await r.run(['ip', '-o', 'addr', 'show', 'dev', dev], { allowFail: true })).stdout;

/** What XAPI does when the VM starts: the PIF-less bridge appears with the VM's port on it. */
async function createVmBridge(): Promise<void> {
  await dom0.run(['ip', 'link', 'add', 'xapi1', 'type', 'bridge']);
  await dom0.run(['ip', 'link', 'set', 'xapi1', 'up']);
  await dom0.run(['ip', 'link', 'add', 'vif-fw', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_FW]);
  await dom0.run(['ip', 'link', 'set', 'vif-fw', 'master', 'xapi1', 'up']);
  await fw.run(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'eth0']);
  await fw.run(['ip', '-6', 'addr', 'add', 'fd99::1/64', 'dev', 'eth0', 'nodad']);
  await fw.run(['ip', 'link', 'set', 'eth0', 'up']);
}

/** ... and when it stops, the bridge goes away with the last VIF. */
async function destroyVmBridge(): Promise<void> {
  await dom0.run(['ip', 'link', 'del', 'vif-fw'], { allowFail: true });
  await dom0.run(['ip', 'link', 'del', 'xapi1'], { allowFail: true });
}

let sim: XapiSim;
/** Bridges of other VMs a test adds (XAPI creates a VM's PIF-less bridges when it starts). */
let otherVmBridge: { start(vm: Record<string, unknown>): Promise<void>; stop(vm: Record<string, unknown>): Promise<void> } | undefined;
before(async () => {
  if (skip) return;
  for (const ns of [NS_DOM0, NS_FW]) await host.run(['ip', 'netns', 'add', ns]);
  await dom0.run(['ip', 'link', 'set', 'lo', 'up']);
  await fw.run(['ip', 'link', 'set', 'lo', 'up']);
  // The management bridge with its /24 and the (now useless) default route through it.
  await dom0.run(['ip', 'link', 'add', 'xenbr1', 'type', 'bridge']);
  await dom0.run(['ip', 'link', 'set', 'xenbr1', 'up']);
  await dom0.run(['ip', 'addr', 'add', '192.168.77.11/24', 'dev', 'xenbr1']);
  await dom0.run(['ip', 'route', 'add', 'default', 'via', '192.168.77.1']);
  sim = await startXapiSim({
    socketPath: join(tmp, 'xapi.sock'),
    onVmStart: async (vm) => {
      if (vm.name_label === 'web-01') await createVmBridge();
      else await otherVmBridge?.start(vm);
    },
    onVmStop: async (vm) => {
      if (vm.name_label === 'web-01') await destroyVmBridge();
      else await otherVmBridge?.stop(vm);
    },
  });
  // The fixture's web-01 is running; start the story with it halted.
  await sim.stopVm(sim.refByName('VM', 'web-01'));
});

after(async () => {
  if (skip) return;
  await sim?.close();
  for (const ns of [NS_DOM0, NS_FW]) await host.run(['ip', 'netns', 'del', ns], { allowFail: true });
  rmSync(tmp, { recursive: true, force: true });
});

const baseConfig = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  xapi: { url: sim.url, insecureHttp: true, user: 'root', password: 'secret' },
  management: [{ bridge: 'xenbr1', address: '192.168.77.11/24' }],
  bindings: [{ vm: 'web-01', network: 'sspn-internal', addresses: ['10.99.0.2/24', 'fd99::2/64'], gateway4: '10.99.0.1', gateway6: 'fd99::1' }],
  netSRs: [{ sr: '85e08ea1-e1f0-5f43-a967-2c2865ae064a', target: '10.99.0.1' }],
  reachability: { tries: 10, timeoutSeconds: 1 },
  eventTimeout: 0.5,
  retryDelayMs: 100,
  replaceForeignDefault: true,
  stateFile: join(tmp, 'state.json'),
  ...over,
});

test('binder: narrows management, binds on VM start, routes, re-plugs the NFS PBD, re-binds after a restart', { skip }, async () => {
  const logs: string[] = [];
  const nfsPbd = sim.refByUuid('PBD', '0e543ee2-a899-57a4-8168-c36cff8dd6c5');
  const localPbd = sim.refByUuid('PBD', 'b6f81d2c-3eb5-525c-bb65-28472db8ac65');
  // An unexpected record must not crash anything (vif-ip-binder died on NFS PBDs).
  sim.add('PBD', { uuid: 'weird', host: 'OpaqueRef:nope', SR: sim.refByUuid('SR', '85e08ea1-e1f0-5f43-a967-2c2865ae064a'), device_config: null, currently_attached: false });
  assert.equal(sim.record('PBD', nfsPbd).currently_attached, false);
  const binder = new Dom0Binder(parseDom0Config(baseConfig()), { runner: dom0, log: (l) => logs.push(l) });
  const ac = new AbortController();
  const running = binder.run(ac.signal);
  try {
    await waitFor('management narrowed', async () => / 192\.168\.77\.11\/32 /.test(await addrs(dom0, 'xenbr1')) && !/192\.168\.77\.11\/24/.test(await addrs(dom0, 'xenbr1')));
    await waitFor('binder waiting for the VM', async () => binder.status.get(0)?.state === 'waiting-vm');
    assert.equal(sim.record('PBD', nfsPbd).currently_attached, false, 'nothing plugged before the VM runs');

    await sim.startVm(sim.refByName('VM', 'web-01'));
    await waitFor('addresses on xapi1', async () => {
      const a = await addrs(dom0, 'xapi1');
      return a.includes('10.99.0.2/24') && a.includes('fd99::2/64');
    });
    await waitFor('bound', async () => binder.status.get(0)?.state === 'bound');
    const v4 = (await dom0.run(['ip', '-4', 'route', 'show', 'default'])).stdout;
    assert.match(v4, /default via 10\.99\.0\.1 dev xapi1 proto 250 metric 1/);
    // The foreign metric-0 default would win over ours: replaceForeignDefault (vif-ip-binder's behaviour) removed it.
    assert.doesNotMatch(v4, /192\.168\.77\.1/);
    assert.ok(logs.some((l) => /removing default route "default via 192\.168\.77\.1.*foreign/.test(l)), logs.join('\n'));
    const v6 = (await dom0.run(['ip', '-6', 'route', 'show', 'default'])).stdout;
    assert.match(v6, /default via fd99::1 dev xapi1 proto 250 metric 1/);
    // The route is usable: the firewall VM answers through the bridge.
    const ping = await dom0.run(['ping', '-c', '1', '-W', '2', '10.99.0.1'], { allowFail: true });
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const lookup = (await dom0.run(['ip', 'route', 'get', '203.0.113.9'])).stdout;
    assert.match(lookup, /via 10\.99\.0\.1 dev xapi1/);

    await waitFor('NFS PBD plugged', async () => sim.record('PBD', nfsPbd).currently_attached === true);
    await binder.settled();
    const plugs = sim.calls.filter((c) => c.method === 'PBD.plug').map((c) => c.params[1]);
    assert.ok(plugs.includes(nfsPbd));
    assert.ok(!plugs.includes(localPbd), 'attached PBDs are left alone');
    assert.ok(logs.some((l) => /plugged PBD .*nfs 192\.168\.10\.5:\/export\/xcp-sr/.test(l)), logs.join('\n'));

    // VM restart: XAPI destroys and recreates the bridge without dom0's address; the binder re-adds it.
    await sim.stopVm(sim.refByName('VM', 'web-01'));
    await waitFor('waiting again', async () => binder.status.get(0)?.state === 'waiting-vm');
    await sim.startVm(sim.refByName('VM', 'web-01'));
    await waitFor('re-bound after restart', async () => (await addrs(dom0, 'xapi1')).includes('10.99.0.2/24'));
    await waitFor('route back', async () => /via 10\.99\.0\.1 dev xapi1/.test((await dom0.run(['ip', 'route', 'show', 'default'])).stdout));

    // A toolstack restart (all sessions gone) is survived.
    sim.invalidateSessions();
    await dom0.run(['ip', 'addr', 'del', '10.99.0.2/24', 'dev', 'xapi1']);
    await waitFor('repaired after session loss', async () => (await addrs(dom0, 'xapi1')).includes('10.99.0.2/24'));
  } finally {
    ac.abort();
    await running;
  }
  assert.equal(sim.sessions.size, 0, 'logged out on stop');
  assert.ok(sim.logins.every((l) => l[3] === 'ipvisor-dom0'));

  // --teardown (a new process would read the same state file) undoes exactly what was recorded.
  const again = new Dom0Binder(parseDom0Config(baseConfig()), { runner: dom0, log: () => undefined });
  assert.deepEqual(again.state.narrowed, [{ dev: 'xenbr1', from: '192.168.77.11/24', to: '192.168.77.11/32' }]);
  const undone = await again.teardown();
  assert.ok(undone.length >= 4, undone.join('\n'));
  const mgmt = await addrs(dom0, 'xenbr1');
  assert.match(mgmt, /192\.168\.77\.11\/24/);
  assert.doesNotMatch(mgmt, /192\.168\.77\.11\/32/);
  assert.doesNotMatch(await addrs(dom0, 'xapi1'), /10\.99\.0\.2\//);
  assert.doesNotMatch((await dom0.run(['ip', 'route', 'show', 'default'])).stdout, /proto 250/);
  assert.doesNotMatch((await dom0.run(['ip', '-6', 'route', 'show', 'default'])).stdout, /proto 250/);
});

test('binder: ambiguous VM names are not guessed', { skip }, async () => {
  const dup = sim.createVm('web-01');
  const logs: string[] = [];
  const binder = new Dom0Binder(parseDom0Config(baseConfig({ management: [], netSRs: [] })), { runner: dom0, log: (l) => logs.push(l) });
  const ac = new AbortController();
  const running = binder.run(ac.signal);
  try {
    await waitFor('ambiguous', async () => binder.status.get(0)?.state === 'ambiguous');
    assert.ok(logs.some((l) => /several VMs have that name; use the UUID/.test(l)));
  } finally {
    ac.abort();
    await running;
    sim.remove('VM', dup);
  }
});

test('binder: several bindings (two VMs, two networks, IPv4 and IPv6) bound independently; a VM already running is bound at start', { skip }, async () => {
  // db-01 gets a second VIF on the pool-wide network (bridge xenbr0), which appears when db-01 starts.
  const dbVif = sim.addVif('db-01', 'Pool-wide network associated with eth0');
  otherVmBridge = {
    start: async (vm) => {
      if (vm.name_label !== 'db-01') return;
      await dom0.run(['ip', 'link', 'add', 'xenbr0', 'type', 'bridge']);
      await dom0.run(['ip', 'link', 'set', 'xenbr0', 'up']);
    },
    stop: async (vm) => {
      if (vm.name_label === 'db-01') await dom0.run(['ip', 'link', 'del', 'xenbr0'], { allowFail: true });
    },
  };
  const cfg = baseConfig({
    management: [],
    netSRs: [],
    bindings: [
      { vm: 'web-01', network: 'sspn-internal', addresses: ['10.99.0.2/24'], gateway4: '10.99.0.1' },
      { vm: 'db-01', network: 'Pool-wide network associated with eth0', addresses: ['10.98.0.2/24', '10.98.1.2/24', 'fd98::2/64'] },
    ],
  });
  const binder = new Dom0Binder(parseDom0Config(cfg), { runner: dom0, log: () => undefined });
  const ac = new AbortController();
  const running = binder.run(ac.signal);
  try {
    assert.equal(sim.record('VM', sim.refByName('VM', 'web-01')).power_state, 'Running');
    await waitFor('web-01 (already running) bound at start', async () => binder.status.get(0)?.state === 'bound' && (await addrs(dom0, 'xapi1')).includes('10.99.0.2/24'));
    await waitFor('db-01 not running yet', async () => binder.status.get(1)?.state === 'waiting-vm');
    await sim.startVm(sim.refByName('VM', 'db-01'));
    await waitFor('db-01 addresses on xenbr0', async () => {
      const a = await addrs(dom0, 'xenbr0');
      return a.includes('10.98.0.2/24') && a.includes('10.98.1.2/24') && a.includes('fd98::2/64');
    });
    await waitFor('db-01 bound', async () => binder.status.get(1)?.state === 'bound');
    await sim.stopVm(sim.refByName('VM', 'db-01'));
    await waitFor('db-01 waiting again', async () => binder.status.get(1)?.state === 'waiting-vm');
    assert.equal(binder.status.get(0)?.state, 'bound', 'the other binding is untouched');
    assert.ok((await addrs(dom0, 'xapi1')).includes('10.99.0.2/24'));
  } finally {
    ac.abort();
    await running;
    await new Dom0Binder(parseDom0Config(cfg), { runner: dom0, log: () => undefined }).teardown();
    otherVmBridge = undefined;
    await dom0.run(['ip', 'link', 'del', 'xenbr0'], { allowFail: true });
    sim.deleteVif(dbVif);
  }
});

test('bundled dist/ipvisor-dom0.cjs runs in the dom0 namespace over the local Unix socket', { skip }, async () => {
  const build = spawn(process.execPath, ['scripts/build-dom0.mjs'], { stdio: 'ignore' });
  assert.equal(await new Promise((r) => build.on('close', r)), 0);
  await dom0.run(['ip', 'addr', 'flush', 'dev', 'xapi1']);
  const pw = join(tmp, 'pw');
  writeFileSync(pw, 'secret\n');
  chmodSync(pw, 0o600);
  const cfgPath = join(tmp, 'dom0.json');
  writeFileSync(cfgPath, JSON.stringify(baseConfig({ xapi: { url: `unix:${join(tmp, 'xapi.sock')}`, user: 'root', passwordFile: pw }, netSRs: [] })));
  // Run a copy outside the repository: one file, no node_modules to fall back on.
  const bundle = join(tmp, 'ipvisor-dom0.cjs');
  copyFileSync('dist/ipvisor-dom0.cjs', bundle);
  const child = spawn('ip', ['netns', 'exec', NS_DOM0, process.execPath, bundle, '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmp });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  try {
    await waitFor('bundle bound the address', async () => (await addrs(dom0, 'xapi1')).includes('10.99.0.2/24'));
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise((r) => child.on('close', r));
  assert.equal(code, 0, err);
  assert.match(err, /connected to local XAPI/);
  assert.equal(sim.sessions.size, 0, 'the bundle logged out on SIGTERM');
});
