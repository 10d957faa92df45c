// Hook argv/XML handling for every libvirt 9 operation, against the XML libvirt really sent
// (shared/reference/libvirt/hook-xml, copied to test/libvirt/fixtures), with a real SQLite store.
// Host application is recorded, not run (the real-libvirtd test covers it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { fileLogger, runLibvirtHook, type ApplyScope, type HookDeps } from '../../src/agent/libvirt/hook.js';
import { parseDomainXml, parseNetworkHookXml, buildNetworkXml, parseNetworkXml, dhcpHostXml } from '../../src/agent/libvirt/xml.js';
import { DOC_PORT, DOC_SETTINGS, DOC_TAP } from '../../src/core/service/libvirt-facts.js';
import { parseHookInvocation } from '../../src/agent/libvirt/hook-main.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const FIX = new URL('./fixtures/', import.meta.url).pathname;
// The fixtures come from several runs: make them one coherent domain (one UUID, one port, one tap).
const fx = (name: string) =>
  readFileSync(join(FIX, name), 'utf8')
    .replaceAll('8c2a3b9e-0000-4000-8000-00000000d001', '3aaa57e8-1e22-4bff-9586-6a05259a2f80')
    .replace(/portid='[0-9a-f-]+'/g, "portid='719654f5-613c-4b78-9995-53b7660e6ee5'")
    .replace(/<target dev='vnet\d+'\/>/g, "<target dev='vnet2'/>");

const LVNAT_UUID = 'fb2da05d-7e6c-41e1-bd0b-a277dd20526e';
const DOM_UUID = '3aaa57e8-1e22-4bff-9586-6a05259a2f80';
const MAC = '52:54:00:12:34:56';

interface Harness {
  store: Store;
  deps: HookDeps;
  applied: ApplyScope[];
  logs: string[];
  used: Array<{ cidr: string; what: string }>;
  cleanup(): Promise<void>;
}

/** shared: every hook call uses the test's own connection (in one process, separate SQLite
 * connections would wait on each other's write lock while blocking the event loop; real hooks
 * are separate processes). */
async function harness(opts: { shared?: boolean } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvhook-'));
  const store = await openStore(join(dir, 'db.sqlite'), { create: true });
  const applied: ApplyScope[] = [];
  const logs: string[] = [];
  const used: Array<{ cidr: string; what: string }> = [];
  const deps: HookDeps = {
    // The hook closes the store it opened; hand out a fresh connection each call like a real hook.
    openStore: async () => (opts.shared ? Object.assign(Object.create(store) as Store, { close: async () => undefined }) : openStore(join(dir, 'db.sqlite'), { create: true })),
    apply: async (_s, scope) => {
      applied.push(scope);
    },
    observeHost: async () => used,
    log: (l) => logs.push(l),
  };
  return { store, deps, applied, logs, used, cleanup: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test('parses network hook XML (port-created) and domain XML with taps', () => {
  const { network, port } = parseNetworkHookXml(fx('network-lvnat-port-created-begin.xml'));
  assert.equal(network.name, 'lvnat');
  assert.equal(network.uuid, LVNAT_UUID);
  assert.equal(network.forwardMode, 'nat');
  assert.equal(network.bridge, 'virbrT0');
  assert.deepEqual(network.ips[0], { family: 4, address: '192.168.100.1', prefix: 24, dhcpRanges: [{ start: '192.168.100.100', end: '192.168.100.200' }], hosts: [] });
  assert.equal(network.connections, 1);
  assert.deepEqual(port, { uuid: '719654f5-613c-4b78-9995-53b7660e6ee5', ownerName: 'lvdom1', ownerUuid: '3aaa57e8-1e22-4bff-9586-6a05259a2f80', mac: MAC, bridge: 'virbrT0' });

  const started = parseDomainXml(fx('qemu-lvdom1-started-begin.xml'));
  assert.equal(started.name, 'lvdom1');
  assert.equal(started.uuid, DOM_UUID);
  assert.equal(started.id, 3);
  assert.deepEqual(started.interfaces, [{ type: 'network', mac: MAC, network: 'lvnat', bridge: 'virbrT0', portid: '719654f5-613c-4b78-9995-53b7660e6ee5', target: 'vnet2', alias: 'net0' }]);
  // stopped/release XML no longer carries the tap
  assert.equal(parseDomainXml(fx('qemu-lvdom1-stopped-end.xml')).interfaces[0].target, null);
  assert.equal(parseDomainXml(fx('qemu-lvdom1-prepare-begin.xml')).interfaces[0].target, null);
  const updated = parseNetworkHookXml(fx('network-lvnat-updated-begin.xml')).network;
  assert.deepEqual(updated.ips[0].hosts, [{ mac: MAC, name: 'lvdom1', ip: '192.168.100.10' }]);
  assert.equal(parseNetworkHookXml(fx('network-lvroute-stopped-end.xml')).network.forwardMode, 'route');
});

test('network XML round-trips through the parser', () => {
  const xml = buildNetworkXml({
    name: 'lab', uuid: '11111111-2222-4333-8444-555555555555', forwardMode: 'route', bridge: null, mtu: 1400,
    ipv4: { gateway: '10.9.8.1', prefix: 24, dhcpStart: '10.9.8.128', dhcpEnd: '10.9.8.254', hosts: [{ mac: MAC, ip: '10.9.8.5', name: 'vm1' }] },
    ipv6: { gateway: 'fd12:3456:789a:1::1', prefix: 64 },
  });
  const n = parseNetworkXml(xml);
  assert.equal(n.forwardMode, 'route');
  assert.equal(n.bridge, null);
  assert.equal(n.mtu, 1400);
  assert.deepEqual(n.ips.map((i) => [i.family, i.address, i.prefix]), [[4, '10.9.8.1', 24], [6, 'fd12:3456:789a:1::1', 64]]);
  assert.deepEqual(n.ips[0].hosts, [{ mac: MAC, ip: '10.9.8.5', name: 'vm1' }]);
  assert.equal(parseNetworkXml(buildNetworkXml({ name: 'iso', uuid: '11111111-2222-4333-8444-555555555556', forwardMode: 'none', bridge: 'br-x', mtu: null, ipv4: null, ipv6: null })).forwardMode, 'none');
  assert.equal(dhcpHostXml({ mac: MAC, ip: '10.0.0.2', name: "bad name'" }), `<host mac='${MAC}' ip='10.0.0.2'/>`);
});

test('hook invocation argv: options before --, libvirt argv after', () => {
  assert.deepEqual(parseHookInvocation(['hook', 'libvirt-qemu', '--db', '/x.db', '--log', '/l', '--', 'vm', 'started', 'begin', '-'], {}), { kind: 'qemu', db: '/x.db', logFile: '/l', runDir: undefined, args: ['vm', 'started', 'begin', '-'] });
  // the run dir comes in the script's argv (libvirtd gives hooks its own environment), or from the environment
  assert.equal(parseHookInvocation(['libvirt-qemu', '--db', '/x.db', '--run-dir', '/tmp/t/run', '--', 'vm', 'started'], {})?.runDir, '/tmp/t/run');
  assert.equal(parseHookInvocation(['libvirt-qemu', '--', 'vm', 'started'], { IPVISOR_RUN_DIR: '/tmp/e' })?.runDir, '/tmp/e');
  assert.equal(parseHookInvocation(['libvirt-network', 'net', 'start', 'begin', '-'], {})?.args[0], 'net');
  assert.equal(parseHookInvocation(['libvirt-lxc'], {}), undefined);
});

test('hooks on an unknown network record nothing (no VM, no port, no tap) and apply nothing', async () => {
  const h = await harness();
  try {
    for (const [kind, argv, file] of [
      ['network', ['lvnat', 'start', 'begin', '-'], 'network-lvnat-start-begin.xml'],
      ['network', ['lvnat', 'started', 'begin', '-'], 'network-lvnat-started-begin.xml'],
      ['qemu', ['lvdom1', 'prepare', 'begin', '-'], 'qemu-lvdom1-prepare-begin.xml'],
      ['network', ['lvnat', 'port-created', 'begin', '-'], 'network-lvnat-port-created-begin.xml'],
      ['qemu', ['lvdom1', 'start', 'begin', '-'], 'qemu-lvdom1-start-begin.xml'],
      ['qemu', ['lvdom1', 'started', 'begin', '-'], 'qemu-lvdom1-started-begin.xml'],
    ] as const) {
      const r = await runLibvirtHook(kind, [...argv], fx(file), h.deps);
      assert.equal(r.code, 0, `${kind} ${argv.join(' ')}`);
    }
    assert.equal((await h.store.listVms()).length, 0);
    assert.equal(h.applied.length, 0);
    assert.equal((await h.store.listDocs(DOC_PORT)).length, 0);
    assert.equal((await h.store.listDocs(DOC_TAP)).length, 0);
    assert.equal(h.logs.length, 6);
  } finally {
    await h.cleanup();
  }
});

test('full lifecycle on an ipvisor network: VIF bound at start, re-applied on reconnect, unbound at stop', async () => {
  const h = await harness();
  try {
    const net = await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24,gateway=192.168.100.1'] }, 'test');
    const call = async (kind: 'network' | 'qemu', op: string, sub: string, file: string, object = kind === 'network' ? 'lvnat' : 'lvdom1') => {
      const r = await runLibvirtHook(kind, [object, op, sub, '-'], fx(file), h.deps);
      assert.equal(r.code, 0, `${kind} ${op}: ${h.logs.at(-1)}`);
    };
    await call('network', 'start', 'begin', 'network-lvnat-start-begin.xml');
    await call('network', 'started', 'begin', 'network-lvnat-started-begin.xml');
    let n = await h.store.getNetwork(net.uuid);
    assert.equal(n?.bridge, 'virbrT0');
    assert.equal(n?.extra.libvirtUuid, LVNAT_UUID);
    assert.deepEqual(h.applied, [{ networkUuid: net.uuid }]);

    await call('qemu', 'prepare', 'begin', 'qemu-lvdom1-prepare-begin.xml');
    const vm = await h.store.getVm(DOM_UUID);
    assert.equal(vm?.name, 'lvdom1');
    const [vif] = await h.store.listVifs(DOM_UUID);
    assert.equal(vif.mac, MAC);
    assert.equal(vif.ifname, null);
    assert.equal(vif.device, 0);

    await call('qemu', 'start', 'begin', 'qemu-lvdom1-start-begin.xml');
    assert.equal((await h.store.getVif(vif.uuid))?.ifname, 'vnet2');
    assert.deepEqual(h.applied.at(-1), { vifUuid: vif.uuid });
    const before = h.applied.length;
    await call('qemu', 'started', 'begin', 'qemu-lvdom1-started-begin.xml');
    assert.equal(h.applied.length, before, 'started with an unchanged tap applies nothing again');

    // libvirtd restart: port-created replayed (its port id is the one in the domain XML), then reconnect.
    await call('network', 'port-created', 'begin', 'network-lvnat-port-created-begin.xml');
    await call('qemu', 'reconnect', 'begin', 'qemu-lvdom1-reconnect-begin.xml');
    assert.deepEqual(h.applied.at(-1), { vifUuid: vif.uuid });

    await call('qemu', 'stopped', 'end', 'qemu-lvdom1-stopped-end.xml');
    assert.equal((await h.store.getVif(vif.uuid))?.ifname, null, 'tap forgotten at stopped although the XML no longer names it');
    assert.deepEqual(h.applied.at(-1), { vifUuid: vif.uuid });
    await call('network', 'port-deleted', 'begin', 'network-lvnat-port-deleted-begin.xml');
    await call('qemu', 'release', 'end', 'qemu-lvdom1-release-end.xml');
    await call('network', 'updated', 'begin', 'network-lvnat-updated-begin.xml');
    await call('network', 'stopped', 'end', 'network-lvroute-stopped-end.xml', 'lvroute');
    n = await h.store.getNetwork(net.uuid);
    assert.equal(n?.extra.libvirtActive, true, 'another network stopping does not touch this one');
    // Audit trail of facts
    const events = await h.store.listEvents({ object: vif.uuid });
    assert.ok(events.some((e) => e.action === 'bind') && events.some((e) => e.action === 'unbind'));
  } finally {
    await h.cleanup();
  }
});

test('start begin refuses a network whose subnet now clashes with a host route', async () => {
  const h = await harness();
  try {
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    h.used.push({ cidr: '192.168.0.0/16', what: 'route 192.168.0.0/16 dev eth1' });
    const r = await runLibvirtHook('network', ['lvnat', 'start', 'begin', '-'], fx('network-lvnat-start-begin.xml'), h.deps);
    assert.equal(r.code, 1);
    assert.match(r.refusal!, /192\.168\.100\.1\/24 clashes with route 192\.168\.0\.0\/16 dev eth1/);
    assert.doesNotMatch(r.refusal!, /\n/);
    h.used.length = 0;
    h.used.push({ cidr: '10.0.0.0/8', what: 'route 10.0.0.0/8' });
    assert.equal((await runLibvirtHook('network', ['lvnat', 'start', 'begin', '-'], fx('network-lvnat-start-begin.xml'), h.deps)).code, 0);
  } finally {
    await h.cleanup();
  }
});

test('prepare refuses a domain with a disabled VIF only when the user enabled it', async () => {
  const h = await harness();
  try {
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'], defaultLocking: 'disabled' }, 'test');
    const xml = fx('qemu-lvdom1-prepare-begin.xml');
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], xml, h.deps)).code, 0);
    await h.store.putDoc(DOC_SETTINGS, 'hooks', { refuseDisabledVifs: true });
    const r = await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], xml, h.deps);
    assert.equal(r.code, 1);
    assert.match(r.refusal!, /lvdom1: VIF 52:54:00:12:34:56 on network lvnat is disabled/);
  } finally {
    await h.cleanup();
  }
});

test('anything unexpected exits 0 with a log line: bad XML, unknown op, migrate/restore, short argv', async () => {
  const h = await harness();
  try {
    for (const [kind, argv, xml] of [
      ['qemu', ['vm', 'started', 'begin', '-'], '<not-xml'],
      ['network', ['n', 'plugged', 'begin', '-'], '<hookData/>'],
      ['qemu', ['vm', 'migrate', 'begin', '-'], fx('qemu-lvdom1-started-begin.xml')],
      ['qemu', ['vm', 'restore', 'begin', '-'], fx('qemu-lvdom1-started-begin.xml')],
      ['qemu', ['vm'], ''],
      ['network', ['n', 'port-created', 'begin', '-'], '<hookData><network><name>n</name></network></hookData>'],
    ] as const) {
      const before = h.logs.length;
      const r = await runLibvirtHook(kind, [...argv], xml, h.deps);
      assert.equal(r.code, 0, `${kind} ${argv.join(' ')}`);
      assert.equal(h.logs.length, before + 1);
    }
  } finally {
    await h.cleanup();
  }
});

test('the hook log file gets one line per entry, even for an error that quotes XML with newlines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvlog-'));
  try {
    const path = join(dir, 'missing-dir', 'hooks.log');
    const log = fileLogger(path);
    const h = await harness();
    try {
      await runLibvirtHook('qemu', ['vm1', 'started', 'begin', '-'], '<x\n<y', { ...h.deps, log });
    } finally {
      await h.cleanup();
    }
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 1, lines.join('\n'));
    const entry = JSON.parse(lines[0]!);
    assert.match(entry.msg, /qemu vm1 started begin -: .*exit 0 so libvirt goes on$/);
    assert.equal(entry.component, 'libvirt-hook');
    assert.match(entry.hookId, /^[0-9a-z]+-[0-9a-z]+$/);
    assert.ok(entry.host && entry.level && entry.time);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parallel port-created + reconnect for the same domain (libvirtd restart replay) create one VM and one VIF', async () => {
  const h = await harness({ shared: true });
  try {
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    const results = await Promise.all([
      runLibvirtHook('network', ['lvnat', 'port-created', 'begin', '-'], fx('network-lvnat-port-created-begin.xml'), h.deps),
      runLibvirtHook('qemu', ['lvdom1', 'reconnect', 'begin', '-'], fx('qemu-lvdom1-reconnect-begin.xml'), h.deps),
      runLibvirtHook('qemu', ['lvdom1', 'reconnect', 'begin', '-'], fx('qemu-lvdom1-reconnect-begin.xml'), h.deps),
    ]);
    assert.deepEqual(results.map((r) => r.code), [0, 0, 0], h.logs.join('\n'));
    assert.equal((await h.store.listVms()).length, 1);
    const vifs = await h.store.listVifs();
    assert.equal(vifs.length, 1);
    assert.equal(vifs[0].ifname, 'vnet2');
  } finally {
    await h.cleanup();
  }
});

test('`ipvisor hook libvirt-qemu|libvirt-network` as libvirt runs it: XML on stdin, nothing on stdout, refusal exit 1', async () => {
  const { spawnSync } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvhookcli-'));
  try {
    const db = join(dir, 'db.sqlite');
    const store = await openStore(db, { create: true });
    await createNetwork(store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    await store.close();
    const entry = new URL('../../src/cli/entry.ts', import.meta.url).pathname;
    const env = { ...process.env, IPVISOR_HOOK_LOG: join(dir, 'hooks.log'), IPVISOR_RUN_DIR: join(dir, 'run'), IPVISOR_NETNS: '' };
    const call = (args: string[], xml: string) => spawnSync(process.execPath, ['--import', new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href, entry, '--db', db, 'hook', ...args], { input: xml, env, cwd: '/', encoding: 'utf8' });
    // prepare: records the VM (no host apply needed at prepare)
    const ok = call(['libvirt-qemu', 'lvdom1', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml'));
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, '');
    // migrate: stdout must stay empty (libvirt would read it as the new domain XML)
    const mig = call(['libvirt-qemu', 'lvdom1', 'migrate', 'begin', '-'], fx('qemu-lvdom1-started-begin.xml'));
    assert.equal(mig.status, 0);
    assert.equal(mig.stdout, '');
    // not even with the global --json flag
    const migJson = spawnSync(process.execPath, ['--import', new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href, entry, '--json', '--db', db, 'hook', 'libvirt-qemu', 'lvdom1', 'restore', 'begin', '-'], { input: fx('qemu-lvdom1-started-begin.xml'), env, cwd: '/', encoding: 'utf8' });
    assert.equal(migJson.status, 0, migJson.stderr);
    assert.equal(migJson.stdout, '');
    const s2 = await openStore(db, { create: true });
    assert.equal((await s2.getVm(DOM_UUID))?.name, 'lvdom1');
    await s2.close();
    // start begin with a clashing host route cannot be staged without root; a disabled VIF can:
    const s3 = await openStore(db, { create: true });
    await s3.putDoc(DOC_SETTINGS, 'hooks', { refuseDisabledVifs: true });
    const [vif] = await s3.listVifs(DOM_UUID);
    await s3.updateVif({ ...vif, locking: 'disabled' });
    await s3.close();
    const refused = call(['libvirt-qemu', 'lvdom1', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml'));
    assert.equal(refused.status, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^ipvisor: domain lvdom1: VIF 52:54:00:12:34:56 on network lvnat is disabled; not starting it.*\n$/);
    assert.match(readFileSync(join(dir, 'hooks.log'), 'utf8'), /qemu lvdom1 migrate begin -: nothing to do/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a domain that starts here is recorded on this host (migration, shared store)', async () => {
  const h = await harness();
  try {
    const { hostname } = await import('node:os');
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml'), h.deps)).code, 0);
    const vm = (await h.store.getVm(DOM_UUID))!;
    await h.store.updateVm({ ...vm, host: 'elsewhere' });
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml'), h.deps)).code, 0);
    assert.equal((await h.store.getVm(DOM_UUID))?.host, 'elsewhere', 'prepare alone does not move it');
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'reconnect', 'begin', '-'], fx('qemu-lvdom1-reconnect-begin.xml'), h.deps)).code, 0);
    assert.equal((await h.store.getVm(DOM_UUID))?.host, hostname());
  } finally {
    await h.cleanup();
  }
});

test('a VM recorded by hand (own name and UUID, same MAC) is the domain: no second record, its name stays', async () => {
  const h = await harness();
  try {
    const { createVm, addVif } = await import('../../src/core/service/vms.js');
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    await createVm(h.store, { name: 'web' }, 'test');
    const mine = await addVif(h.store, { vm: 'web', network: 'lvnat', mac: MAC }, 'test');
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'start', 'begin', '-'], fx('qemu-lvdom1-start-begin.xml'), h.deps)).code, 0);
    assert.deepEqual((await h.store.listVms()).map((v) => v.name), ['web']);
    assert.equal((await h.store.getVif(mine.uuid))?.ifname, 'vnet2');
    // A VM named by the user keeps its name when the domain has another one.
    await createVm(h.store, { name: 'db', uuid: '11111111-2222-4333-8444-555555555555' }, 'test');
    const renamed = fx('qemu-lvdom1-start-begin.xml').replaceAll(DOM_UUID, '11111111-2222-4333-8444-555555555555').replaceAll('52:54:00:12:34:56', '52:54:00:12:34:99');
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'start', 'begin', '-'], renamed, h.deps)).code, 0);
    assert.equal((await h.store.getVm('11111111-2222-4333-8444-555555555555'))?.name, 'db');
  } finally {
    await h.cleanup();
  }
});

test('a VM named from libvirt follows a domain rename', async () => {
  const h = await harness();
  try {
    await createNetwork(h.store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', subnets: ['192.168.100.0/24'] }, 'test');
    await runLibvirtHook('qemu', ['lvdom1', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml'), h.deps);
    assert.equal((await h.store.getVm(DOM_UUID))?.name, 'lvdom1');
    await runLibvirtHook('qemu', ['lvdom1b', 'prepare', 'begin', '-'], fx('qemu-lvdom1-prepare-begin.xml').replace('<name>lvdom1</name>', '<name>lvdom1b</name>'), h.deps);
    const vm = await h.store.getVm(DOM_UUID);
    assert.equal(vm?.name, 'lvdom1b');
    assert.equal(vm?.extra.libvirtDomain, 'lvdom1b');
  } finally {
    await h.cleanup();
  }
});
