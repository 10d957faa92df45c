// Control plane and agents with real packets: `ipvisor server` on PostgreSQL (SQLite when PostgreSQL
// is not installed and skips are allowed) in a namespace of its own, three agent hosts, each a
// network namespace with a bridge and VM namespaces on veths, reaching the server over a veth.
// Addresses allocated on the server are enforced on the right host only; losing the server or the
// database never loosens enforcement; hooks during the outage enforce from the local copy; an agent
// restarted during the outage enforces from disk; the server back, everything converges. A host's
// token cannot read or write another host's state. Live migration at hook level between two agents.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { openStore } from '../../src/core/store/open.js';
import { cli } from '../support/cli.js';
import { ETH_IP4, Topology, eth, ipv4, listen, netnsSkipReason, sendFrames, sh, udp, type VmNs } from '../support/netns.js';
import { postgresSkip, startPostgres, type PostgresServer } from '../support/postgres.js';
import { notApplicable } from '../support/skip.js';
import { guardRootNamespace } from '../support/root-guard.js';
import { until as untilWithin } from '../support/until.js';

guardRootNamespace();

const skip = await netnsSkipReason();
// PostgreSQL when installed (CI: required); SQLite otherwise
const pgReason = skip ? 'no netns' : postgresSkip();
const ENTRY = resolve('src/cli/entry.ts');
const BRIDGE = 'ivmhbr0';
const PORT = 18443;
const SERVER_IP = '10.99.0.1';

/** Checks here talk to a server that may be down: an error is "not yet". */
const until = (what: string, fn: () => Promise<boolean>, ms = 20_000) => untilWithin(what, fn, { ms, everyMs: 150, retryErrors: true });

interface HostUnderTest {
  name: string;
  topo: Topology;
  stateDir: string;
  runDir: string;
  tokenFile: string;
  agent?: ChildProcess;
  log: string;
  vms: Record<string, VmNs>;
}

describe('server + three agent hosts', { skip: skip || false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-agents-'));
  const p = `iv${Math.random().toString(16).slice(2, 6)}`;
  const srvNs = `${p}srv`;
  let pg: PostgresServer | undefined;
  let storeUrl = '';
  let server: ChildProcess | undefined;
  let serverLog = '';
  const hosts: HostUnderTest[] = [];
  const c = (...args: string[]) => cli(storeUrl, ...args);
  const baseEnv = { ...process.env, IPVISOR_LOG_LEVEL: 'info' };

  function startServer(): void {
    server = spawn('ip', ['netns', 'exec', srvNs, process.execPath, '--import', 'tsx', ENTRY, 'server', '--listen', `${SERVER_IP}:${PORT}`, '--insecure-listen', '--store', storeUrl, '--interval', '2'], {
      env: { ...baseEnv, IPVISOR_RUN_DIR: join(dir, 'srv-run') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()));
  }

  async function stopProc(proc: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((r) => {
      proc.once('exit', () => r());
      proc.kill(signal);
    });
  }

  function startAgent(h: HostUnderTest): void {
    const env = { ...baseEnv, IPVISOR_RUN_DIR: h.runDir, IPVISOR_STATE_DIR: h.stateDir };
    h.agent = spawn('ip', ['netns', 'exec', h.topo.host, process.execPath, '--import', 'tsx', ENTRY, 'agent', '--server', `http://${SERVER_IP}:${PORT}`, '--insecure-http', '--token-file', h.tokenFile, '--host', h.name, '--interval', '1'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    h.agent.stderr!.on('data', (d: Buffer) => (h.log += d.toString()));
  }

  /** A libvirt qemu hook call on host h, as libvirt makes it (argv + domain XML on stdin). */
  async function hook(h: HostUnderTest, op: string, vmUuid: string, name: string, ifaces: Array<{ mac: string; dev: string }>): Promise<void> {
    const xml = `<domain type='kvm'><name>${name}</name><uuid>${vmUuid}</uuid><devices>${ifaces
      .map((i) => `<interface type='bridge'><mac address='${i.mac}'/><source bridge='${BRIDGE}'/><target dev='${i.dev}'/></interface>`)
      .join('')}</devices></domain>`;
    const env = { ...baseEnv, IPVISOR_RUN_DIR: h.runDir, IPVISOR_STATE_DIR: h.stateDir, IPVISOR_HOOK_LOG: join(h.stateDir, 'hooks.log') };
    await new Promise<void>((res, rej) => {
      const child = spawn('ip', ['netns', 'exec', h.topo.host, process.execPath, '--import', 'tsx', resolve('src/agent/libvirt/hook-main.ts'), 'libvirt-qemu', '--', name, op, 'begin', '-'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`hook ${op} exited ${code}: ${err}`))));
      child.stdin!.end(xml);
    });
  }

  const elements = (h: HostUnderTest) => h.topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'vif_ip4'], { allowFail: true });
  const has = (set: string, ip: string) => new RegExp(`${ip.replace(/\./g, '\\.')}(?![0-9])`).test(set);
  const sendUdp = (from: VmNs, to: VmNs, src: string, marker: string) => ({ marker, frame: eth(to.mac, from.mac, ETH_IP4, ipv4(src, '10.70.0.250', 17, udp(4000, 4001, Buffer.from(marker)))) });
  async function passes(h: HostUnderTest, from: string, src: string): Promise<boolean> {
    const marker = `m-${Math.random().toString(36).slice(2, 8)}`;
    // a listening window long enough for python's start-up in the sender (seconds on a loaded machine)
    const l = await listen(h.vms.obs.ns, 'eth0', 8);
    await sendFrames(h.vms[from].ns, 'eth0', [sendUdp(h.vms[from], h.vms.obs, src, marker).frame]);
    const hex = Buffer.from(marker).toString('hex');
    return (await l.done()).some((g) => g.includes(hex));
  }

  const MAC = (h: number, v: number) => `52:54:00:7${h}:00:0${v}`;
  const vmUuid = (h: number, v: number) => `00000000-0000-4000-8000-00000000${h}${v}00`.slice(0, 36);

  before(async () => {
    if (pgReason === false) {
      pg = await startPostgres();
      storeUrl = await pg.newDatabase();
    } else {
      storeUrl = join(dir, 'server.db');
    }
    // the management network: a bridge in the server's namespace, one veth per host
    await sh(['ip', 'netns', 'add', srvNs]);
    await sh(['ip', 'netns', 'exec', srvNs, 'ip', 'link', 'set', 'lo', 'up']);
    await sh(['ip', 'netns', 'exec', srvNs, 'ip', 'link', 'add', 'mgmt', 'type', 'bridge']);
    await sh(['ip', 'netns', 'exec', srvNs, 'ip', 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'mgmt']);
    await sh(['ip', 'netns', 'exec', srvNs, 'ip', 'link', 'set', 'mgmt', 'up']);

    assert.equal((await c('init')).code, 0);
    assert.equal((await c('network', 'create', 'lan', '--bridge', BRIDGE, '--subnet', '10.70.0.0/24', '--default-locking', 'locked')).code, 0);
    assert.equal((await c('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '10.70.0.0/24')).code, 0);
    for (let i = 0; i < 3; i++) {
      const topo = new Topology();
      await topo.create();
      await topo.inHost(['ip', 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
      await topo.inHost(['ip', 'link', 'set', BRIDGE, 'up']);
      const name = `${p}-h${i}`;
      const h: HostUnderTest = { name, topo, stateDir: join(dir, `state${i}`), runDir: join(dir, `run${i}`), tokenFile: join(dir, `token${i}`), log: '', vms: {} };
      hosts.push(h); // at once: after() removes its namespaces even when the set-up fails midway
      // the host's veth to the management network
      const mg = `${p}m${i}`;
      await sh(['ip', 'link', 'add', mg, 'type', 'veth', 'peer', 'name', 'eth-mgmt', 'netns', topo.host]);
      await sh(['ip', 'link', 'set', mg, 'netns', srvNs]);
      await sh(['ip', 'netns', 'exec', srvNs, 'ip', 'link', 'set', mg, 'master', 'mgmt', 'up']);
      await topo.inHost(['ip', 'addr', 'add', `10.99.0.${10 + i}/24`, 'dev', 'eth-mgmt']);
      await topo.inHost(['ip', 'link', 'set', 'eth-mgmt', 'up']);
      for (const [v, vname] of [[1, 'a'], [2, 'b'], [3, 'c']] as const) h.vms[vname] = await topo.addVm(vname, MAC(i, v), { bridge: BRIDGE });
      h.vms.obs = await topo.addVm('obs', `52:54:00:7${i}:00:0f`, { bridge: BRIDGE });
      assert.equal((await c('host', 'add', name, '--token-file', h.tokenFile)).code, 0);
      // VM a: bound and addressed; VM c: known, addressed, not started yet (a hook binds it later)
      for (const [v, vname] of [[1, 'a'], [3, 'c']] as const) {
        const vm = `${name}-${vname}`;
        assert.equal((await c('vm', 'add', vm, '--host', name, '--uuid', vmUuid(i, v))).code, 0);
        assert.equal((await c('vif', 'add', vm, '--network', 'lan', '--mac', MAC(i, v))).code, 0);
        assert.equal((await c('ip', 'allocate', '--vif', `${vm}:0`, '--address', `10.70.0.${i * 10 + v}`)).code, 0);
      }
      assert.equal((await c('vif', 'bind', `${name}-a:0`, '--ifname', h.vms.a.vif, '--host', name)).code, 0);
    }
    startServer();
    await until(`the server listening: ${serverLog}`, async () => serverLog.includes('listening on'), 60_000);
    for (const h of hosts) startAgent(h);
  });

  after(async () => {
    for (const h of hosts) await stopProc(h.agent, 'SIGKILL');
    await stopProc(server, 'SIGKILL');
    for (const h of hosts) await h.topo.destroy();
    await sh(['ip', 'netns', 'del', srvNs], { allowFail: true });
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an address allocated on the server is enforced on its host only (real packets)', async () => {
    for (const [i, h] of hosts.entries()) {
      await until(`host ${i} enforcing its VM`, async () => has(await elements(h), `10.70.0.${i * 10 + 1}`), 120_000);
    }
    for (const [i, h] of hosts.entries()) {
      const set = await elements(h);
      for (const j of [0, 1, 2]) if (j !== i) assert.ok(!has(set, `10.70.0.${j * 10 + 1}`), `host ${i} does not enforce host ${j}'s VIF`);
      assert.equal(await passes(h, 'a', `10.70.0.${i * 10 + 1}`), true, 'the allowed source passes');
      assert.equal(await passes(h, 'a', '10.70.0.99'), false, 'a spoofed source is dropped');
    }
    // a new allocation reaches only its host's agent
    assert.equal((await c('ip', 'allocate', '--vif', `${hosts[1].name}-a:0`, '--address', '10.70.0.60')).code, 0);
    await until('the new address on host 1', async () => has(await elements(hosts[1]), '10.70.0.60'));
    assert.equal(await passes(hosts[1], 'a', '10.70.0.60'), true);
    assert.ok(!has(await elements(hosts[0]), '10.70.0.60') && !has(await elements(hosts[2]), '10.70.0.60'));
    const shown = await c('host', 'show', hosts[1].name, '--json');
    assert.equal(shown.code, 0);
    assert.equal(JSON.parse(shown.stdout).applied.ok, true, 'the agent reported its applied revision');
  });

  test("a host's token cannot read or write another host's state", async () => {
    const asHost0 = new HttpControlPlane({ servers: [`http://${SERVER_IP}:${PORT}`], tokenFile: hosts[0].tokenFile, insecureHttp: true });
    // the test process is outside the namespaces: reach the server through host 0's namespace
    const probe = async (path: string, method: string, body?: unknown) => {
      const args = ['netns', 'exec', hosts[0].topo.host, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', method, '-H', `authorization: Bearer ${readFileSync(hosts[0].tokenFile, 'utf8').trim()}`, '-H', 'x-ipvisor-protocol: 1.0', '-H', 'content-type: application/json'];
      if (body) args.push('--data', JSON.stringify(body));
      return sh(['ip', ...args, `http://${SERVER_IP}:${PORT}${path}`]);
    };
    asHost0.close();
    assert.equal(await probe(`/agent/v1/hosts/${hosts[1].name}/desired`, 'GET'), '403');
    const before = JSON.stringify((await c('vif', 'list', '--json')).json);
    const fact = { kind: 'vif-bind', host: hosts[1].name, time: new Date().toISOString(), vmUuid: vmUuid(1, 3), mac: MAC(1, 3), ifname: 'evil0' };
    assert.equal(await probe(`/agent/v1/hosts/${hosts[1].name}/facts`, 'POST', { facts: [fact] }), '403');
    assert.equal(await probe(`/agent/v1/hosts/${hosts[0].name}/facts`, 'POST', { facts: [fact] }), '403', 'a fact naming another host, sent as itself');
    // a domain (libvirt watcher) on another host: its VM would move there and its NIC be bound
    const domain = { kind: 'domain', host: hosts[1].name, time: new Date().toISOString(), state: 'running', domain: { uuid: vmUuid(1, 3), name: `${hosts[1].name}-c`, interfaces: [{ type: 'bridge', mac: MAC(1, 3), network: null, bridge: BRIDGE, portid: null, target: 'evil1', alias: null }] } };
    assert.equal(await probe(`/agent/v1/hosts/${hosts[0].name}/facts`, 'POST', { facts: [domain] }), '403', 'a domain on another host, sent as itself');
    assert.equal(await probe(`/agent/v1/hosts/${hosts[0].name}/facts`, 'POST', { facts: [{ ...domain, host: hosts[0].name }, fact] }), '403', 'all or nothing: one fact about another host refuses the report');
    assert.equal(await probe(`/agent/v1/hosts/${hosts[0].name}/desired`, 'GET'), '200', 'its own state is readable');
    assert.equal(await probe(`/agent/v1/hosts/${hosts[0].name}/desired`, 'GET').then(() => probe(`/agent/v1/hosts/${hosts[0].name}/desired`.replace(hosts[0].name, 'nobody'), 'GET')), '403');
    assert.equal(JSON.stringify((await c('vif', 'list', '--json')).json), before, 'nothing changed');
  });

  test('server killed: enforcement holds, a hook enforces from the local copy, a restarted agent enforces from disk, then everything converges', async () => {
    const h = hosts[2];
    await stopProc(server, 'SIGKILL');
    await until('agents notice the outage', async () => /control plane unreachable/.test(h.log), 60_000);
    for (const [i, x] of hosts.entries()) assert.equal(await passes(x, 'a', '10.70.0.99'), false, `host ${i}: spoofing stays dropped`);
    // VM c starts on host 2 during the outage: the hook hands it to the local agent
    await hook(h, 'start', vmUuid(2, 3), `${h.name}-c`, [{ mac: MAC(2, 3), dev: h.vms.c.vif }]);
    assert.ok(has(await elements(h), '10.70.0.23'), 'the VM started during the outage is enforced at once');
    assert.equal(await passes(h, 'c', '10.70.0.23'), true);
    assert.equal(await passes(h, 'c', '10.70.0.98'), false);
    // the agent restarted during the outage (and its tables flushed meanwhile) enforces from disk
    await stopProc(h.agent, 'SIGTERM');
    await h.topo.inHost(['nft', 'flush', 'ruleset']);
    h.log = '';
    startAgent(h);
    await until('the restarted agent enforcing from disk', async () => has(await elements(h), '10.70.0.23') && has(await elements(h), '10.70.0.21'));
    assert.match(h.log, /enforcing the desired state on disk/);
    assert.equal(await passes(h, 'a', '10.70.0.97'), false);
    assert.equal(await passes(h, 'c', '10.70.0.23'), true);
    // no agent at all: the hook enforces by itself from the copy (VM b is not in any copy: nothing)
    await stopProc(h.agent, 'SIGTERM');
    await hook(h, 'release', vmUuid(2, 3), `${h.name}-c`, [{ mac: MAC(2, 3), dev: h.vms.c.vif }]);
    assert.ok(!has(await elements(h), '10.70.0.23'), 'released by the hook itself');
    await hook(h, 'start', vmUuid(2, 3), `${h.name}-c`, [{ mac: MAC(2, 3), dev: h.vms.c.vif }]);
    assert.ok(has(await elements(h), '10.70.0.23'), 'started again, enforced by the hook from the copy');
    startAgent(h);
    // server back: the queued facts arrive, every host converges
    serverLog = '';
    startServer();
    await until('the server back', async () => serverLog.includes('listening on'), 90_000);
    await until(`the VM bound during the outage recorded on the server`, async () => {
      const r = await c('vif', 'list', '--json');
      return r.json.some((v: any) => v.mac === MAC(2, 3) && v.ifname === h.vms.c.vif);
    }, 30_000).catch((e) => {
      throw new Error(`${(e as Error).message}\nAGENT LOG:\n${h.log.slice(-4000)}\nSERVER LOG:\n${serverLog.slice(-4000)}`);
    });
    assert.equal((await c('ip', 'allocate', '--vif', `${h.name}-c:0`, '--address', '10.70.0.66')).code, 0);
    await until('a change after the outage enforced', async () => has(await elements(h), '10.70.0.66'));
  });

  test('live migration: the target enforces from its first hook, the source removes only at release', async () => {
    const [src, dst] = [hosts[0], hosts[1]];
    assert.ok(server && server.exitCode === null && server.signalCode === null, 'the server runs (it came back in the outage test)');
    const uuid = vmUuid(0, 1);
    // the target's tap for the incoming VM: VM namespace b on host 1 stands in for it, with the MAC of host 0's VM a
    await dst.topo.inNs(dst.vms.b.ns, ['ip', 'link', 'set', 'eth0', 'address', MAC(0, 1)]);
    dst.vms.b.mac = MAC(0, 1);
    await hook(dst, 'prepare', uuid, `${src.name}-a`, [{ mac: MAC(0, 1), dev: dst.vms.b.vif }]);
    await hook(dst, 'start', uuid, `${src.name}-a`, [{ mac: MAC(0, 1), dev: dst.vms.b.vif }]);
    assert.ok(has(await elements(dst), '10.70.0.1'), `the target enforces from its first hook with a tap\n${dst.log.slice(-3000)}\n${serverLog.slice(-3000)}\n${readFileSync(join(dst.stateDir, 'hooks.log'), 'utf8').slice(-2000)}`);
    assert.equal(await passes(dst, 'b', '10.70.0.1'), true);
    assert.equal(await passes(dst, 'b', '10.70.0.96'), false);
    // the source still runs the VM until release: its enforcement stays
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(has(await elements(src), '10.70.0.1'), 'the source keeps enforcing until release');
    assert.equal(await passes(src, 'a', '10.70.0.95'), false);
    await hook(src, 'release', uuid, `${src.name}-a`, [{ mac: MAC(0, 1), dev: src.vms.a.vif }]);
    await until('the source removed at release', async () => !has(await elements(src), '10.70.0.1'));
    const vm = (await c('vm', 'list', '--json')).json.find((v: any) => v.uuid === uuid);
    assert.equal(vm.host, dst.name, 'the VM is on the target host now');
  });
  test('PostgreSQL stopped: agents keep enforcing; an allocation fails clearly', { skip: notApplicable(pgReason && 'SQLite run: no PostgreSQL to stop') }, async () => {
    if (!pg) throw new Error('PostgreSQL did not start');
    await pg.stop();
    const r = await c('ip', 'allocate', '--vif', `${hosts[0].name}-a:0`, '--json');
    assert.notEqual(r.code, 0);
    assert.equal(r.error?.code, 'STORE_UNAVAILABLE');
    await new Promise((res) => setTimeout(res, 2500));
    // host 0's VM left for host 1 in the migration test: host 1 now enforces it on its VM b
    for (const [i, vm, ip] of [[1, 'a', '10.70.0.11'], [1, 'b', '10.70.0.1'], [2, 'a', '10.70.0.21']] as const) {
      assert.equal(await passes(hosts[i], vm, '10.70.0.99'), false, `host ${i} ${vm}: spoofing stays dropped`);
      assert.equal(await passes(hosts[i], vm, ip), true, `host ${i} ${vm}: allowed traffic passes`);
    }
    pg = undefined;
  });

});

// the store URL of the SQLite fallback is a path; openStore is imported for type checking of the test
void openStore;
void writeFileSync;
