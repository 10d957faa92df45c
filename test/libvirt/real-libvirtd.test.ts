// End to end against a real libvirtd (started by this test inside its own network and mount
// namespaces, see test/support/libvirt/daemon.ts) and a real TCG guest: install the hooks, create
// a managed network, sync a defined domain, allocate its address (a DHCP reservation), start it and
// check that the hooks fired and enforce the VIF, that the guest got its reserved address by DHCP,
// that a spoofed packet from the guest is dropped, that an imported routed IP reaches the guest
// from an upstream namespace — and that all of it still holds after a libvirtd restart.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/main.js';
import { eui64, formatAddress, parseCidr } from '../../src/core/ipam/addr.js';
import { openStore } from '../../src/core/store/open.js';
import { ensureGuest, guestDomainXml, libvirtSkipReason, startLibvirtHarness, type LibvirtHarness } from '../support/libvirt/daemon.js';
import { buildHookBundle } from '../support/libvirt/bundle.js';
import { guardRootNamespace, privateRunDir } from '../support/root-guard.js';

// nothing outside the test's namespaces and temp dirs (guest pushes take their lock in a run dir of the test's own)
guardRootNamespace();

const skip = libvirtSkipReason();
// Per-process names: two runs on one machine (a developer's and a full suite) must not collide on
// namespaces, the run dir or libvirt's shared per-domain state under /var/lib/libvirt/qemu.
const NAME = `e2e${process.pid}`;
const VM = `ipv-vm-${process.pid}`;
const VM_UUID = `6d1f4a52-3c1e-4f7a-9d3b-${process.pid.toString(16).padStart(12, '0')}`;
const MAC = '52:54:00:e2:e0:01';
const HOTPLUG_MAC = '52:54:00:e2:e0:02';
const HOTPLUG_MAC2 = '52:54:00:e2:e0:03';
const ROUTED = '198.51.100.10';
const UNBOUND_ROUTED = '198.51.100.20';
const UP_NS = `ipv-${NAME}-up`;

let h: LibvirtHarness | undefined;
let work = '';
let db = '';
let hookLog = '';
const savedEnv = { ...process.env };
const watcherAc = new AbortController();
let stopWatcher: () => Promise<void> = async () => undefined;

function run(argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(argv[0], argv.slice(1), { timeout: opts.timeoutMs ?? 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    c.stdin?.on('error', () => undefined); // the command may exit before reading its input
    c.stdin?.end(opts.input ?? '');
  });
}

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(['--db', db, ...argv], { stdout: (s) => (out += s), stderr: (s) => (err += s), env: process.env });
  return { code, out, err };
}

async function cliOk(...argv: string[]): Promise<string> {
  const r = await cli(...argv);
  assert.equal(r.code, 0, `ipvisor ${argv.join(' ')}: ${r.err}`);
  return r.out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs shell commands inside the guest through its TCP 2323 shell (busybox nc from the namespace). */
async function guest(ip: string, script: string): Promise<string> {
  const bb = ensureGuest().busybox;
  // The guest re-listens after each session; a connection in that gap is refused: retry.
  for (let i = 0; i < 20; i++) {
    const r = await run(['ip', 'netns', 'exec', h!.ns, bb, 'nc', '-w', '8', ip, '2323'], { input: script + '\necho __END__\nexit\n', timeoutMs: 20_000 });
    if (r.stdout.includes('__END__')) return r.stdout;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`guest shell on ${ip}:2323 did not answer`);
}

const serialLog = () => join(work, 'serial.log');

test('real libvirtd: hooks, managed network, DHCP reservation, anti-spoofing, routed IP, libvirtd restart', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  // 1. Hooks installed before libvirtd starts (it looks for them only at start).
  const entry = await buildHookBundle();
  h = await startLibvirtHarness({
    name: NAME,
    beforeStart: async (hh) => {
      // libvirtd runs hooks with its own environment: the test's run dir goes in the scripts, or
      // the hooks would write the machine's /run/ipvisor (its enforced-store record, its lock)
      await cliOk('libvirt', 'install', '--hooks-dir', hh.hooksDir, '--no-systemd', '--entry', entry, '--log', hookLog, '--run-dir', process.env.IPVISOR_RUN_DIR!);
    },
  });
  const hooks = () => (existsSync(hookLog) ? readFileSync(hookLog, 'utf8') : '');
  process.env.IPVISOR_LIBVIRT_URI = h.uri;
  process.env.IPVISOR_NETNS = h.ns;

  // 2. Managed network with an automatic subnet and a ULA /64.
  const created = JSON.parse(await cliOk('--json', 'network', 'create', 'lvt', '--driver', 'libvirt', '--subnet', 'auto', '--ipv6', 'auto'));
  const v4 = created.subnets.find((s: { family: number }) => s.family === 4);
  assert.match(v4.cidr, /^(10\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+|192\.168\.\d+)\.0\/24$/);
  assert.ok(created.subnets.some((s: { family: number; cidr: string }) => s.family === 6 && /^fd[0-9a-f]{2}:/.test(s.cidr)));
  assert.ok(created.bridge, 'bridge chosen by libvirt and recorded');
  const netXml = await h.virsh('net-dumpxml', 'lvt');
  assert.match(netXml, new RegExp(`<uuid>${created.uuid}</uuid>`), 'one persistent UUID in libvirt and in the store');
  assert.match(netXml, /<range start='[\d.]+\.128' end='[\d.]+\.254'\/>/);
  await waitFor('network started hooks', () => /network lvt start begin -: no clash/.test(hooks()) && /network lvt started begin -: bridge/.test(hooks()));
  const gw = v4.gateway as string;

  // 3. A defined domain, discovered by sync; its address allocated -> DHCP reservation.
  writeFileSync(join(work, 'dom.xml'), guestDomainXml({ name: VM, uuid: VM_UUID, network: 'lvt', mac: MAC, serialLog: serialLog() }));
  await h.virsh('define', join(work, 'dom.xml'));
  // A network made with virsh, not ipvisor, is adopted by sync (and never removed from libvirt by it).
  writeFileSync(join(work, 'plain.xml'), `<network><name>lvplain</name><forward mode='route'/><bridge name='ipvplain0'/><ip address='10.99.7.1' prefix='24'/></network>`);
  await h.virsh('net-define', join(work, 'plain.xml'));
  await cliOk('libvirt', 'sync');
  const plain = JSON.parse(await cliOk('--json', 'network', 'show', 'lvplain'));
  assert.deepEqual([plain.driver, plain.mode, plain.bridge, plain.subnets[0].cidr, plain.subnets[0].gateway, plain.extra.managed], ['libvirt', 'routed', 'ipvplain0', '10.99.7.0/24', '10.99.7.1', false]);
  await cliOk('network', 'delete', 'lvplain');
  assert.match(await h.virsh('net-list', '--all', '--name'), /lvplain/, 'an adopted network stays in libvirt');
  await h.virsh('net-undefine', 'lvplain');
  const vifList = await cliOk('--json', 'vif', 'list', '--vm', VM);
  assert.equal(JSON.parse(vifList).length, 1);
  const alloc = JSON.parse(await cliOk('--json', 'ip', 'allocate', '--vif', `${VM}:0`, '--family', '4'));
  const guestIp = alloc.address as string;
  assert.match(await h.virsh('net-dumpxml', 'lvt'), new RegExp(`<host mac='${MAC}' name='${VM}' ip='${guestIp.replace(/\./g, '\\.')}'/>`));

  // 4. Routed IPs from a libvirt-nethook-helper file: one bound to the VIF, one only routed.
  const routedFile = join(work, 'routed-ips');
  writeFileSync(routedFile, `# libvirt-nethook-helper format\n${ROUTED} lvt ${VM}:0\n${UNBOUND_ROUTED}   lvt   # not bound to a VIF\n`);
  await cliOk('import', 'routed-ips', routedFile, '--no-apply');
  const plan = await cliOk('plan');
  assert.match(plan, new RegExp(`\\+ route.*${ROUTED.replace(/\./g, '\\.')}`), `the imported routed IP shows up in plan:\n${plan}`);
  assert.match(plan, new RegExp(`\\+ route.*${UNBOUND_ROUTED.replace(/\./g, '\\.')}`), `a line without a VM is routed too:\n${plan}`);

  // 5. Start the guest: hooks bind the tap and enforce.
  await h.virsh('start', VM);
  const tap = (await h.virsh('domiflist', VM)).trim().split(/\s+/)[0];
  assert.match(tap, /^vnet\d+$/);
  await waitFor('qemu hooks', () => new RegExp(`qemu ${VM} prepare begin -`).test(hooks()) && new RegExp(`network lvt port-created begin -: port`).test(hooks()) && new RegExp(`qemu ${VM} started begin -`).test(hooks()));
  const store = await openStore(db, { create: true });
  try {
    const vif = (await store.listVifs(VM_UUID))[0];
    assert.equal(vif.ifname, tap, 'the hook recorded the tap name');
  } finally {
    await store.close();
  }
  const nftHas = async (needle: string) => (await h!.nsExec(['nft', 'list', 'table', 'bridge', 'ipvisor'])).stdout.includes(needle);
  await waitFor('nft elements for the VIF', async () => (await nftHas(`"${tap}" . ${guestIp}`)) && (await nftHas(`"${tap}" . ${ROUTED}`)));

  // 6. The guest got exactly its reserved address by DHCP.
  await waitFor('guest DHCP', () => existsSync(serialLog()) && /GUEST-READY/.test(readFileSync(serialLog(), 'utf8')), 60_000);
  assert.match(readFileSync(serialLog(), 'utf8'), new RegExp(`GUEST: eth0 bound ${guestIp.replace(/\./g, '\\.')}/`));

  // 6b. Hot-plug fires only port-created (no tap name): the host's libvirt watcher reports the
  // domain as a fact. It runs in this host's agent, here over HTTP to a control plane on the same
  // store (what `ipvisor agent` does; serve runs the same watcher against its in-process agent).
  // After the guest booted: its init runs udhcpc only at boot.
  // The agent and watcher keep running across the libvirtd restart below (stopped in after()).
  const [{ createLibvirtWatcher }, { Agent }, { HttpControlPlane }, { openHostState }, { StoreControlPlane }, { agentRoutes }, { startHttpServer }, { thisHost }, { AGENT_PROTOCOL }] = await Promise.all([
    import('../../src/agent/libvirt/watcher.js'),
    import('../../src/agent/agent.js'),
    import('../../src/agent/http-control-plane.js'),
    import('../../src/agent/state.js'),
    import('../../src/server/control-plane.js'),
    import('../../src/server/agent-http.js'),
    import('../../src/server/http.js'),
    import('../../src/core/host-identity.js'),
    import('../../src/core/control-plane.js'),
  ]);
  const ws = await openStore(db, { create: true });
  const hostName = thisHost();
  const tokenFile = join(work, 'agent.token');
  await cliOk('host', 'add', hostName, '--token-file', tokenFile);
  const controlPlane = new StoreControlPlane(ws, { requireRegistration: true });
  const srv = await startHttpServer({ store: ws, listen: '127.0.0.1:0', plugins: [{ plugin: agentRoutes as never, options: { controlPlane, version: AGENT_PROTOCOL } }] });
  const agentLog: string[] = [];
  // the host state the hooks use too (beside the store): one ledger for this host
  const agent = new Agent({ host: hostName, controlPlane: new HttpControlPlane({ servers: [srv.url], tokenFile }), local: openHostState(work), log: (m) => agentLog.push(m), intervalMs: 60_000, retryMs: 300, waitMs: 10_000 });
  const agentDone = agent.run(watcherAc.signal);
  const w = createLibvirtWatcher({ pollMs: 3_600_000, retryMs: 500 });
  stopWatcher = async () => {
    watcherAc.abort();
    await w.stop();
    await agentDone;
    await srv.close();
    controlPlane.close();
    await ws.close();
  };
  const hotplug = async (mac: string) => {
    const mark = hooks().length;
    await h!.virsh('attach-interface', VM, 'network', 'lvt', '--mac', mac, '--model', 'virtio', '--live');
    await waitFor('port-created for the hot-plugged NIC', () => hooks().slice(mark).includes('network lvt port-created begin -: port'));
    assert.doesNotMatch(hooks().slice(mark), /qemu /, 'no qemu hook on hot-plug');
    return waitFor(`the agent's domain fact recorded on the server (agent log: ${agentLog.slice(-5).join(' | ')})`, async () => {
      const v = (await ws.listVifs(VM_UUID)).find((x) => x.mac === mac);
      return v?.ifname ? v : undefined;
    }, 15_000);
  };
  await t.test("hot-plugged interface: reported by the agent's libvirt watcher, recorded on the server, enforced", async () => {
    {
      // Drift: the reservation vanished behind ipvisor's back; the watcher's connect scan restores it
      // from the agent's desired copy.
      await h!.virsh('net-update', 'lvt', 'delete', 'ip-dhcp-host', `<host mac='${MAC}'/>`, '--live', '--config');
      assert.doesNotMatch(await h!.virsh('net-dumpxml', 'lvt'), new RegExp(`<host mac='${MAC}'`));
      await agent.ready;
      await w.start({ host: agent.hostPort(), actor: `agent:${hostName}`, requestReconcile: (r) => agent.requestReconcile(r), log: (m) => agentLog.push(m), signal: watcherAc.signal });
      await waitFor('reservation restored by the watcher', async () => new RegExp(`<host mac='${MAC}' name='${VM}' ip='${guestIp.replace(/\./g, '\\.')}'/>`).test(await h!.virsh('net-dumpxml', 'lvt')), 10_000);
      const bound = await hotplug(HOTPLUG_MAC);
      assert.match(bound.ifname!, /^vnet\d+$/);
      assert.notEqual(bound.ifname, tap);
      // the port-created hook made the VIF (it has no tap name); the agent's fact bound its tap
      assert.ok((await ws.listEvents()).some((e) => e.actor === `agent:${hostName}` && e.objectKind === 'vif' && e.action === 'bind' && (e.after as { ifname?: string } | null)?.ifname === bound.ifname), 'bound through the service layer as the agent');
      // enforced by the agent: an address allocated on the server for the new NIC reaches the
      // host's nft set and the network's DHCP reservations
      const got = JSON.parse(await cliOk('--json', 'ip', 'allocate', '--vif', `${VM}:${bound.device}`, '--family', '4'));
      const hotIp = got.address as string;
      assert.match(hotIp, /^\d+\.\d+\.\d+\.\d+$/, JSON.stringify(got));
      await waitFor('the hot-plugged NIC enforced by the agent', () => nftHas(`"${bound.ifname}" . ${hotIp}`), 15_000);
    }
  });

  // 7. Upstream namespace for the routed IP: veth to libvirtd's namespace, route to the routed IP.
  await run(['ip', 'netns', 'del', UP_NS]);
  for (const argv of [
    ['ip', 'netns', 'add', UP_NS],
    ['ip', 'link', 'add', 'ipvup0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', 'ipvup1', 'netns', UP_NS],
    ['ip', '-n', h.ns, 'addr', 'add', '198.18.0.1/30', 'dev', 'ipvup0'],
    ['ip', '-n', h.ns, 'link', 'set', 'ipvup0', 'up'],
    ['ip', '-n', UP_NS, 'addr', 'add', '198.18.0.2/30', 'dev', 'ipvup1'],
    ['ip', '-n', UP_NS, 'link', 'set', 'ipvup1', 'up'],
    ['ip', '-n', UP_NS, 'link', 'set', 'lo', 'up'],
    ['ip', '-n', UP_NS, 'route', 'add', `${ROUTED}/32`, 'via', '198.18.0.1'],
    ['ip', '-n', UP_NS, 'route', 'add', `${UNBOUND_ROUTED}/32`, 'via', '198.18.0.1'],
  ]) {
    const r = await run(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
  // Make the host match the whole plan now (routes + forward accepts for the routed IPs).
  await cliOk('import', 'routed-ips', routedFile);
  await guest(guestIp, `ip addr add ${ROUTED}/32 dev eth0`);

  const checks = async (phase: string) => {
    // legit traffic passes
    const legit = await guest(guestIp, `ping -c 1 -W 3 ${gw} >/dev/null && echo LEGIT-OK || echo LEGIT-FAIL`);
    assert.match(legit, /LEGIT-OK/, `${phase}: guest reaches its gateway from its own address`);
    // a spoofed source address is dropped on the bridge
    const spoof = await guest(guestIp, `ip addr add ${spoofIp}/32 dev eth0 2>/dev/null; ping -c 2 -W 2 -I ${spoofIp} ${gw} >/dev/null && echo SPOOF-PASSED || echo SPOOF-DROPPED`);
    assert.match(spoof, /SPOOF-DROPPED/, `${phase}: spoofed packet dropped`);
    // the routed IP is reachable from upstream
    const up = await run(['ip', 'netns', 'exec', UP_NS, 'ping', '-c', '2', '-W', '3', ROUTED]);
    assert.equal(up.code, 0, `${phase}: routed IP reachable from upstream: ${up.stdout}${up.stderr}`);
    assert.ok(await nftHas(`"${tap}" . ${guestIp}`), `${phase}: VIF still enforced`);
    if (phase !== 'before restart') {
      assert.match(await guest(guestIp, `ping6 -c 2 -W 2 -I ${slaac} ${gw6} >/dev/null && echo V6-OK || echo V6-FAIL`), /V6-OK/, `${phase}: IPv6 from the assigned SLAAC address`);
    }
  };
  const spoofIp = guestIp.replace(/\.\d+$/, '.99');
  await t.test('before restart', () => checks('before restart'));
  // IPv6 on the RA network: the guest configures its EUI-64 SLAAC address by itself; the VIF is
  // locked (it holds an IPv4 address), so that address may send only once it is assigned.
  const gw6 = created.subnets.find((s: { family: number }) => s.family === 6).gateway as string;
  const prefix6 = parseCidr(created.subnets.find((s: { family: number }) => s.family === 6).cidr).network;
  const slaac = formatAddress(6, prefix6 | eui64(MAC));
  await t.test('IPv6: the SLAAC (EUI-64) address passes once assigned', async () => {
    await waitFor('guest SLAAC address', async () => (await guest(guestIp, 'ip -6 addr show dev eth0')).includes(slaac), 20_000);
    const ping6 = `ping6 -c 2 -W 2 -I ${slaac} ${gw6} >/dev/null && echo V6-OK || echo V6-FAIL`;
    assert.match(await guest(guestIp, ping6), /V6-FAIL/, 'not assigned yet: dropped');
    // ip allocate picks the VIF's EUI-64 address by itself on an RA network.
    const v6 = JSON.parse(await cliOk('--json', 'ip', 'allocate', '--vif', `${VM}:0`, '--family', '6'));
    assert.equal(v6.address, slaac);
    await cliOk('apply');
    assert.match(await guest(guestIp, ping6), /V6-OK/);
  });
  await t.test('control: with the VIF unlocked the same spoofed packet passes', async () => {
    await cliOk('vif', 'set', `${VM}:0`, '--locking', 'unlocked');
    await cliOk('apply');
    const spoof = await guest(guestIp, `ping -c 2 -W 2 -I ${spoofIp} ${gw} >/dev/null && echo SPOOF-PASSED || echo SPOOF-DROPPED`);
    assert.match(spoof, /SPOOF-PASSED/);
    // The routed-ips line without a VM is routed to the bridge with forward accepts (the reply
    // can leave the guest only while its VIF is unlocked: no VIF is locked to that address).
    await guest(guestIp, `ip addr add ${UNBOUND_ROUTED}/32 dev eth0`);
    const unbound = await run(['ip', 'netns', 'exec', UP_NS, 'ping', '-c', '2', '-W', '3', UNBOUND_ROUTED]);
    assert.equal(unbound.code, 0, `unbound routed IP reachable from upstream: ${unbound.stdout}${unbound.stderr}`);
    await cliOk('vif', 'set', `${VM}:0`, '--locking', 'network_default');
    await cliOk('apply');
    const locked = await run(['ip', 'netns', 'exec', UP_NS, 'ping', '-c', '1', '-W', '2', UNBOUND_ROUTED]);
    assert.notEqual(locked.code, 0, 'locked again: the guest may not answer from an address no VIF holds');
  });

  // 8. libvirtd restart: port-created replayed, reconnect per domain, libvirt rewrites its chains.
  // Lose ipvisor's bridge table too (as after a firewall reload): the replayed hooks must restore it.
  await h.nsExec(['nft', 'delete', 'table', 'bridge', 'ipvisor']);
  assert.equal(await nftHas(`"${tap}" . ${guestIp}`), false);
  const before = hooks().length;
  await h.restartLibvirtd();
  await waitFor('reconnect hook', () => hooks().slice(before).includes(`qemu ${VM} reconnect begin -`));
  // The replayed port-created already re-binds the tap it remembered (same port id as in the domain XML).
  assert.match(hooks().slice(before), new RegExp(`network lvt port-created begin -: port [0-9a-f-]+ mac ${MAC} recorded, vif [0-9a-f-]+ on ${tap}, host applied`));
  await t.test('after libvirtd restart', () => checks('after restart'));
  await t.test('the watcher reconnected after the restart: another hot-plugged NIC is bound', async () => {
    const bound = await hotplug(HOTPLUG_MAC2);
    assert.match(bound.ifname!, /^vnet\d+$/);
  });
  await stopWatcher();
  stopWatcher = async () => undefined;

  // 9. Clash checks: at create time (explicit CIDR) and, by the start hook, every time a network starts.
  const overlap = await cli('network', 'create', 'lvt-dup', '--driver', 'libvirt', '--subnet', v4.cidr);
  assert.equal(overlap.code, 2);
  assert.match(overlap.err, /^ipvisor: subnet: .* overlaps /);
  const second = JSON.parse(await cliOk('--json', 'network', 'create', 'lvt2', '--driver', 'libvirt', '--subnet', 'auto', '--mode', 'routed'));
  const v4b = second.subnets[0].cidr as string;
  assert.notEqual(v4b, v4.cidr);
  assert.match(await h.virsh('net-dumpxml', 'lvt2'), /<forward mode='route'\/>/);
  await h.virsh('net-destroy', 'lvt2');
  await h.nsExec(['ip', 'link', 'add', 'ipvclash0', 'type', 'veth', 'peer', 'name', 'ipvclash1']); // no dummy module on every kernel
  await h.nsExec(['ip', 'addr', 'add', v4b.replace(/0\/24$/, '200/28'), 'dev', 'ipvclash0']);
  await h.nsExec(['ip', 'link', 'set', 'ipvclash0', 'up']);
  const refused = await run(['virsh', '-c', h.uri, 'net-start', 'lvt2']);
  assert.notEqual(refused.code, 0, `net-start should be refused; hook log:\n${hooks().split('\n').filter((l) => l.includes('lvt2')).join('\n')}`);
  assert.match(refused.stderr, new RegExp(`ipvisor: network lvt2: subnet ${v4b.replace(/0\/24$/, '1/24').replace(/\./g, '\\.')} clashes with route`));
  await h.nsExec(['ip', 'link', 'del', 'ipvclash0']);
  await h.virsh('net-start', 'lvt2');
  // Deleting the network in ipvisor removes the libvirt network it created.
  await cliOk('network', 'delete', 'lvt2');
  assert.doesNotMatch(await h.virsh('net-list', '--all', '--name'), /lvt2/);

  // 10. Release: the reservation goes, the address is held for the lease time.
  await cliOk('ip', 'release', guestIp);
  assert.doesNotMatch(await h.virsh('net-dumpxml', 'lvt'), new RegExp(`ip='${guestIp.replace(/\./g, '\\.')}'`));
  const show = await cliOk('--json', 'network', 'show', 'lvt');
  assert.equal(Number(JSON.parse(show).pools.find((p: { family: number; purpose: string }) => p.family === 4 && p.purpose === 'vif').held), 1);

  // 11. Opt-in refusal: a domain with a disabled VIF does not start (qemu prepare hook, exit 1).
  await cliOk('libvirt', 'install', '--hooks-dir', h.hooksDir, '--no-systemd', '--entry', entry, '--log', hookLog, '--run-dir', process.env.IPVISOR_RUN_DIR!, '--refuse-disabled');
  await cliOk('vif', 'set', `${VM}:0`, '--locking', 'disabled');
  await h.virsh('destroy', VM);
  const startRefused = await run(['virsh', '-c', h.uri, 'start', VM]);
  assert.notEqual(startRefused.code, 0);
  assert.match(startRefused.stderr, new RegExp(`ipvisor: domain ${VM}: VIF ${MAC} on network lvt is disabled; not starting it`));
  assert.match(await h.virsh('domstate', VM), /shut off/);

  // 12. Uninstall removes ipvisor's hooks only.
  await cliOk('libvirt', 'uninstall', '--hooks-dir', h.hooksDir, '--no-systemd');
  assert.ok(!existsSync(join(h.hooksDir, 'qemu.d', 'ipvisor')) && !existsSync(join(h.hooksDir, 'network.d', 'ipvisor')));
});

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'ipv-lvreal-'));
  db = join(work, 'ipvisor.db');
  hookLog = join(work, 'hooks.log');
  process.env.IPVISOR_RUN_DIR = join(work, 'run');
  ensureGuest();
});

after(async () => {
  if (skip) return;
  try {
    await stopWatcher().catch(() => undefined);
    if (h) await h.teardown();
  } finally {
    await run(['ip', 'netns', 'del', UP_NS]);
    for (const k of ['IPVISOR_LIBVIRT_URI', 'IPVISOR_NETNS', 'IPVISOR_RUN_DIR']) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
    if (work) rmSync(work, { recursive: true, force: true });
  }
});
