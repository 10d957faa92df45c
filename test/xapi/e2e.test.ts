// The "done when", through the CLI only: an admin points ipvisor at a pool, sees VMs and
// VIFs appear, allocates an address that becomes a VIF lock (`ipvisor apply`), imports a
// vif-ip-binder.json and runs `ipvisor xapi dom0` in dom0 (a network namespace this test made).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { cli, tempDb } from '../support/cli.js';
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
const NS_DOM0 = `ipvx-e2e-d0-${tag}`;
const NS_FW = `ipvx-e2e-fw-${tag}`;
const NS_HOST = `ipvx-e2e-h-${tag}`;
const host = createHostRunner({ netns: undefined });
const dom0 = createHostRunner({ netns: NS_DOM0 });
const fw = createHostRunner({ netns: NS_FW });
let sim: XapiSim;
let db: string;
let cleanup: () => void;

let prevRunDir: string | undefined;
before(async () => {
  if (skip) return;
  ({ db, cleanup } = tempDb());
  // the host enforcer's lock and its record of the enforced store stay in the test's directory
  prevRunDir = process.env.IPVISOR_RUN_DIR;
  process.env.IPVISOR_RUN_DIR = dirname(db);
  for (const ns of [NS_DOM0, NS_FW, NS_HOST]) await host.run(['ip', 'netns', 'add', ns]);
  for (const r of [dom0, fw]) await r.run(['ip', 'link', 'set', 'lo', 'up']);
  // dom0's management bridge holds its LAN address; the LAN is behind the firewall VM.
  await dom0.run(['ip', 'link', 'add', 'xenbr1', 'type', 'bridge']);
  await dom0.run(['ip', 'link', 'set', 'xenbr1', 'up']);
  await dom0.run(['ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'xenbr1']);
  sim = await startXapiSim({
    socketPath: join(dirname(db), 'xapi.sock'),
    onVmStart: async (vm) => {
      if (vm.name_label !== 'web-01') return;
      await dom0.run(['ip', 'link', 'add', 'xapi1', 'type', 'bridge']);
      await dom0.run(['ip', 'link', 'set', 'xapi1', 'up']);
      await dom0.run(['ip', 'link', 'add', 'vif-fw', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS_FW]);
      await dom0.run(['ip', 'link', 'set', 'vif-fw', 'master', 'xapi1', 'up']);
      await fw.run(['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'eth0']);
      await fw.run(['ip', 'link', 'set', 'eth0', 'up']);
    },
    onVmStop: async (vm) => {
      if (vm.name_label !== 'web-01') return;
      await dom0.run(['ip', 'link', 'del', 'vif-fw'], { allowFail: true });
      await dom0.run(['ip', 'link', 'del', 'xapi1'], { allowFail: true });
    },
  });
  await sim.stopVm(sim.refByName('VM', 'web-01'));
});

after(async () => {
  if (skip) return;
  if (prevRunDir === undefined) delete process.env.IPVISOR_RUN_DIR;
  else process.env.IPVISOR_RUN_DIR = prevRunDir;
  await sim?.close();
  for (const ns of [NS_DOM0, NS_FW, NS_HOST]) await host.run(['ip', 'netns', 'del', ns], { allowFail: true });
  cleanup?.();
});

test('connect, sync, allocate -> VIF lock, import vif-ip-binder, run the dom0 binder', { skip }, async () => {
  const dir = dirname(db);
  const pw = join(dir, 'pw');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  const ok = async (...args: string[]) => {
    const r = await cli(db, ...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r;
  };
  await ok('xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw);
  await ok('xapi', 'sync');
  const vms = (await ok('vm', 'list', '--json')).json as Array<{ name: string }>;
  assert.deepEqual(vms.map((v) => v.name).sort(), ['db-01', 'web-01']);
  await ok('network', 'set', 'sspn-internal', '--subnet', '10.99.0.0/24,gateway=10.99.0.1');
  await ok('pool', 'create', 'sspn', '--network', 'sspn-internal', '--cidr', '10.99.0.0/24');
  const alloc = await ok('ip', 'allocate', '--vif', 'web-01:1', '--json');
  const address = alloc.json.assignment?.address ?? alloc.json.address;
  assert.match(String(address), /^10\.99\.0\.\d+$/);
  const plan = await ok('plan');
  assert.match(plan.stdout, /~ xapi-vif web-01:1 \(lab\) \(locking network_default -> locked, ipv4 \[\] -> \[10\.99\.0\.\d+\]\)/);
  // The host enforcer runs too: keep it inside a namespace of its own.
  process.env.IPVISOR_NETNS = NS_HOST;
  try {
    await ok('apply');
  } finally {
    delete process.env.IPVISOR_NETNS;
  }
  const vif = sim.record('VIF', sim.refByUuid('VIF', '4b710316-1e00-5471-9f9e-776a512e68ae'));
  assert.deepEqual([vif.locking_mode, vif.ipv4_allowed], ['locked', [address]]);

  // dom0: the admin's old vif-ip-binder.json, imported, pointed at the (simulated) local XAPI.
  const legacy = join(dir, 'vif-ip-binder.json');
  writeFileSync(legacy, JSON.stringify({ user: 'root', password: 'secret', vmName: 'web-01', sspnName: 'sspn-internal', brName: 'xenbr1', address: '10.99.0.2/24', gateway: '10.99.0.1', timeout: 0.5 }), { mode: 0o400 });
  const cfgPath = join(dir, 'ipvisor', 'dom0.json');
  await ok('import', 'vif-ip-binder', legacy, '--out', cfgPath);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.xapi.url = `unix:${join(dir, 'xapi.sock')}`;
  cfg.stateFile = join(dir, 'ipvisor', 'state.json');
  writeFileSync(cfgPath, JSON.stringify(cfg), { mode: 0o600 });

  const child = spawn('ip', ['netns', 'exec', NS_DOM0, process.execPath, '--import', 'tsx', 'src/cli/entry.ts', '--db', db, 'xapi', 'dom0', '--config', cfgPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const until = async (what: string, fn: () => Promise<boolean>): Promise<void> => {
    const end = Date.now() + 20_000;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const addrs = async (dev: string): Promise<string> => (await dom0.run(['ip', '-o', 'addr', 'show', 'dev', dev], { allowFail: true })).stdout;
  try {
    await until('management narrowed', async () => (await addrs('xenbr1')).includes('10.99.0.2/32'));
    await sim.startVm(sim.refByName('VM', 'web-01'));
    await until('address on the private bridge', async () => (await addrs('xapi1')).includes('10.99.0.2/24'));
    await until('default route', async () => /default via 10\.99\.0\.1 dev xapi1 proto 250/.test((await dom0.run(['ip', 'route', 'show', 'default'])).stdout));
    const ping = await dom0.run(['ping', '-c', '1', '-W', '2', '10.99.0.1'], { allowFail: true });
    assert.equal(ping.code, 0, 'dom0 reaches the firewall VM through the private network');
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await new Promise((r) => child.on('close', r)), 0, log);
  assert.match(log, /narrowing management address 10\.99\.0\.2\/24 on xenbr1 to 10\.99\.0\.2\/32/);
});
