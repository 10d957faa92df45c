// Pure parts of the libvirt driver: subnet picking and clash detection, DHCP reservation diffs,
// the routed-ips file, hook script install/uninstall, event-stream lines.
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { runCli } from '../../src/cli/main.js';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addrsToUsed, findClash, pickFreeIpv4Subnet, pickUla64, routesToUsed, splitIpv4Subnet } from '../../src/agent/libvirt/subnets.js';
import { desiredDhcpHosts, diffDhcpHosts } from '../../src/agent/libvirt/network.js';
import { parseRoutedIps } from '../../src/agent/libvirt/routed-import.js';
import { HOOK_MARKER, installHooks, renderHookScript, uninstallHooks } from '../../src/agent/libvirt/install.js';
import { domainNeedingScan } from '../../src/agent/libvirt/watcher.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import type { Network } from '../../src/core/model/types.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

test('auto subnet: a private /24 that overlaps no route, address or network', () => {
  const used = [
    { cidr: '10.0.0.0/8', what: 'route 10.0.0.0/8' },
    { cidr: '172.16.0.0/12', what: 'route 172.16.0.0/12' },
    { cidr: '192.168.0.0/17', what: 'address' },
  ];
  for (let i = 0; i < 50; i++) {
    const s = pickFreeIpv4Subnet(used)!;
    assert.match(s, /^192\.168\.(12[89]|1[3-9]\d|2\d\d)\.0\/24$/);
    assert.equal(findClash(s, used), undefined);
  }
  // Deterministic with an injected random source; falls back to a scan when probes keep hitting.
  assert.equal(pickFreeIpv4Subnet([], { random: () => 0 }), '10.0.0.0/24');
  const almostFull = [{ cidr: '10.0.0.0/8', what: 'x' }, { cidr: '172.16.0.0/12', what: 'x' }, { cidr: '192.168.0.0/17', what: 'x' }, { cidr: '192.168.128.0/18', what: 'x' }, { cidr: '192.168.192.0/19', what: 'x' }, { cidr: '192.168.224.0/20', what: 'x' }, { cidr: '192.168.240.0/21', what: 'x' }, { cidr: '192.168.248.0/22', what: 'x' }, { cidr: '192.168.252.0/23', what: 'x' }, { cidr: '192.168.254.0/24', what: 'x' }];
  assert.equal(pickFreeIpv4Subnet(almostFull, { random: () => 0 }), '192.168.255.0/24');
  assert.equal(pickFreeIpv4Subnet([...almostFull, { cidr: '192.168.255.0/24', what: 'x' }]), undefined);
});

test('ULA /64: fd00::/8 with a random 40-bit global ID, avoiding used prefixes', () => {
  const u = pickUla64([]);
  assert.match(u, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);
  let n = 0;
  const seq = () => Buffer.from([0, 0, 0, 0, 0, 0, n++]);
  assert.equal(pickUla64([{ cidr: 'fd00::/64', what: 'x' }], seq), 'fd00:0:0:1::/64');
});

test('clash detection reads ip -j route/addr output and skips default, local, link-local', () => {
  const routes4 = JSON.stringify([
    { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
    { dst: '192.0.2.0/24', dev: 'eth0', protocol: 'kernel' },
    { type: 'local', dst: '192.0.2.10', table: 'local', dev: 'eth0' },
    { type: 'broadcast', dst: '192.0.2.255', table: 'local', dev: 'eth0' },
    { dst: '10.20.0.0/16', dev: 'virbr9' },
  ]);
  const used = routesToUsed(4, routes4);
  assert.deepEqual(used.map((u) => u.cidr), ['192.0.2.0/24', '10.20.0.0/16']);
  assert.deepEqual(routesToUsed(4, routes4, 'virbr9').map((u) => u.cidr), ['192.0.2.0/24']);
  const routes6 = JSON.stringify([{ dst: 'fe80::/64', dev: 'eth0' }, { dst: '2001:db8::/64', dev: 'eth0' }, { type: 'multicast', dst: 'ff00::/8', dev: 'eth0' }]);
  assert.deepEqual(routesToUsed(6, routes6).map((u) => u.cidr), ['2001:db8::/64']);
  const addrs = JSON.stringify([{ ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] }, { ifname: 'eth0', addr_info: [{ family: 'inet', local: '198.51.100.7', prefixlen: 25, scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }] }]);
  assert.deepEqual(addrsToUsed(addrs), [{ cidr: '198.51.100.0/25', what: 'address 198.51.100.7/25 on eth0' }]);
  assert.equal(findClash('10.20.5.0/24', used)?.what, 'route 10.20.0.0/16 dev virbr9');
  assert.equal(findClash('10.21.0.0/24', used), undefined);
  assert.equal(routesToUsed(4, 'not json').length, 0);
});

test('IPv4 split: gateway .1, pool in the lower half, DHCP in the upper half', () => {
  assert.deepEqual(splitIpv4Subnet('10.1.2.0/24'), { gateway: '10.1.2.1', prefix: 24, pool: { first: '10.1.2.1', last: '10.1.2.127' }, dhcp: { start: '10.1.2.128', end: '10.1.2.254' } });
  assert.deepEqual(splitIpv4Subnet('10.1.0.0/22', '10.1.3.254').dhcp, { start: '10.1.2.0', end: '10.1.3.254' });
  assert.throws(() => splitIpv4Subnet('10.1.2.0/30'), /too small/);
});

const net = { uuid: 'n1', subnets: [{ cidr: '10.1.2.0/24', family: 4, gateway: '10.1.2.1' }, { cidr: 'fd00:1::/64', family: 6, gateway: null }] } as unknown as Network;

test('DHCP reservations: one per VIF (its primary IPv4), diff touches only what ipvisor owns', () => {
  const vifs = [{ uuid: 'v1', mac: '52:54:00:00:00:01', name: 'a' }, { uuid: 'v2', mac: '52:54:00:00:00:02', name: 'b' }, { uuid: 'v3', mac: '52:54:00:00:00:03', name: 'c' }];
  const as = [
    { vifUuid: 'v1', family: 4, address: '10.1.2.20', kind: 'additional', createdAt: '2' },
    { vifUuid: 'v1', family: 4, address: '10.1.2.10', kind: 'primary', createdAt: '1' },
    { vifUuid: 'v1', family: 6, address: 'fd00:1::5054:ff:fe00:1', kind: 'primary', createdAt: '1' },
    { vifUuid: 'v2', family: 4, address: '10.1.2.11', kind: 'primary', createdAt: '1' },
    { vifUuid: 'v3', family: 4, address: '203.0.113.5', kind: 'routed', createdAt: '1' },
  ];
  const desired = desiredDhcpHosts(net, vifs, as);
  assert.deepEqual(desired, [{ mac: '52:54:00:00:00:01', ip: '10.1.2.10', name: 'a' }, { mac: '52:54:00:00:00:02', ip: '10.1.2.11', name: 'b' }]);
  const current = [
    { mac: '52:54:00:00:00:01', ip: '10.1.2.10' }, // right already
    { mac: '52:54:00:00:00:02', ip: '10.1.2.99' }, // wrong ip
    { mac: '52:54:00:00:00:09', ip: '10.1.2.50' }, // the user's own: untouched
    { mac: '52:54:00:00:00:08', ip: '10.1.2.51' }, // ours, VIF gone
  ];
  const d = diffDhcpHosts(current, desired, ['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:08']);
  assert.deepEqual(d.remove.map((h) => h.mac), ['52:54:00:00:00:02', '52:54:00:00:00:08']);
  assert.deepEqual(d.add.map((h) => `${h.mac}=${h.ip}`), ['52:54:00:00:00:02=10.1.2.11']);
  assert.deepEqual(diffDhcpHosts(current.slice(0, 1), desired.slice(0, 1), []), { remove: [], add: [] });
  // Two NICs of one VM on the network: libvirt rejects a duplicate host name, so only one is named.
  const two = desiredDhcpHosts(net, [{ uuid: 'v1', mac: '52:54:00:00:00:01', name: 'a' }, { uuid: 'v4', mac: '52:54:00:00:00:04', name: 'a' }], [
    { vifUuid: 'v1', family: 4, address: '10.1.2.10', kind: 'primary', createdAt: '1' },
    { vifUuid: 'v4', family: 4, address: '10.1.2.14', kind: 'primary', createdAt: '1' },
  ]);
  assert.deepEqual(two, [{ mac: '52:54:00:00:00:01', ip: '10.1.2.10', name: 'a' }, { mac: '52:54:00:00:00:04', ip: '10.1.2.14' }]);
});

test('routed-ips file: "<ip> <network> [vm[:device]]", comments, errors name the line', () => {
  const lines = parseRoutedIps('# header\n\n198.51.100.10 lvnat\n  2001:db8::/64\tlvroute  # a routed /64\n203.0.113.7 lvnat web1:0\n', 'routed-ips');
  assert.deepEqual(lines, [
    { line: 3, cidr: '198.51.100.10/32', family: 4, network: 'lvnat', vif: null },
    { line: 4, cidr: '2001:db8::/64', family: 6, network: 'lvroute', vif: null },
    { line: 5, cidr: '203.0.113.7/32', family: 4, network: 'lvnat', vif: 'web1:0' },
  ]);
  assert.throws(() => parseRoutedIps('198.51.100.10\n', 'f'), (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && /^f:1: expected/.test(e.message));
  assert.throws(() => parseRoutedIps('ok 1 2 3\n', 'f'), /f:1/);
  assert.throws(() => parseRoutedIps('\n300.1.1.1 lvnat\n', 'f'), /f:2/);
  assert.throws(() => parseRoutedIps('198.51.100.1/24 lvnat\n', 'f'), /host bits/);
});

test('install writes .d hooks with absolute paths, keeps foreign hooks, uninstall removes only ours', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvinst-'));
  try {
    const hooks = join(dir, 'hooks');
    mkdirSync(join(hooks, 'qemu.d'), { recursive: true });
    writeFileSync(join(hooks, 'qemu'), '#!/bin/sh\nexit 0\n'); // the user's own main hook
    writeFileSync(join(hooks, 'qemu.d', 'other'), '#!/bin/sh\nexit 0\n');
    const cmd = { node: '/usr/bin/node', nodeArgs: [], entry: "/opt/ipvisor it's/dist/libvirt-hook.cjs", db: '/var/lib/ipvisor/ipvisor.db', log: '/var/log/ipvisor/libvirt-hooks.log' };
    const res = installHooks({ hooksDir: hooks, command: cmd });
    assert.deepEqual(res.written, [join(hooks, 'network.d', 'ipvisor'), join(hooks, 'qemu.d', 'ipvisor')]);
    const script = readFileSync(join(hooks, 'qemu.d', 'ipvisor'), 'utf8');
    assert.equal(script, renderHookScript('qemu', cmd));
    assert.match(script, /exec '\/usr\/bin\/node' '\/opt\/ipvisor it'\\''s\/dist\/libvirt-hook\.cjs' 'libvirt-qemu' '--db' '\/var\/lib\/ipvisor\/ipvisor\.db' '--log' '\/var\/log\/ipvisor\/libvirt-hooks\.log' -- "\$@"/);
    assert.equal(statSync(join(hooks, 'network.d', 'ipvisor')).mode & 0o777, 0o755);
    // A foreign file with our name is never overwritten.
    writeFileSync(join(hooks, 'network.d', 'ipvisor'), '#!/bin/sh\n# somebody else\n');
    assert.equal(installHooks({ hooksDir: hooks, command: cmd }).skipped.length, 1);
    const un = uninstallHooks({ hooksDir: hooks, systemdDir: null });
    assert.deepEqual(un.removed, [join(hooks, 'qemu.d', 'ipvisor')]);
    assert.equal(un.skipped.length, 1);
    assert.ok(existsSync(join(hooks, 'qemu')) && existsSync(join(hooks, 'qemu.d', 'other')) && existsSync(join(hooks, 'network.d', 'ipvisor')));
    assert.ok(!readFileSync(join(hooks, 'network.d', 'ipvisor'), 'utf8').includes(HOOK_MARKER));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an installed hook whose node or entry went away exits 0 with a log line and nothing on stdout; install refuses a missing entry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvguard-'));
  try {
    const log = join(dir, 'hooks.log');
    const entry = join(dir, 'gone', 'libvirt-hook.cjs');
    const script = join(dir, 'qemu-hook');
    writeFileSync(script, renderHookScript('qemu', { node: process.execPath, nodeArgs: [], entry, db: join(dir, 'db'), log }), { mode: 0o755 });
    // libvirt would refuse to start every VM on a non-zero exit.
    // libvirt writes the whole domain XML to stdin; a script that exits without reading it makes
    // that write fail with EPIPE (certain with more than a pipe buffer of XML).
    const xml = `<domain><description>${'x'.repeat(1 << 20)}</description></domain>\n`;
    const out = execFileSync(script, ['vm1', 'prepare', 'begin', '-'], { input: xml, encoding: 'utf8' });
    assert.equal(out, '');
    assert.match(readFileSync(log, 'utf8'), /^ipvisor libvirt-qemu hook vm1 prepare begin -: .*gone\/libvirt-hook\.cjs is missing; exit 0/);
    // With the entry present, the script runs it (here: a stand-in that exits 3).
    mkdirSync(join(dir, 'gone'));
    writeFileSync(entry, 'process.exit(3)\n');
    assert.throws(() => execFileSync(script, ['vm1', 'prepare', 'begin', '-'], { input: '' }), (e: { status?: number }) => e.status === 3);

    let err = '';
    const io = { stdout: () => undefined, stderr: (x: string) => (err += x), env: process.env };
    const code = await runCli(['--db', join(dir, 'db'), 'libvirt', 'install', '--hooks-dir', join(dir, 'hooks'), '--no-systemd', '--entry', join(dir, 'nope.cjs')], io);
    assert.equal(code, 2);
    assert.match(err, /^ipvisor: entry: .*nope\.cjs does not exist/);
    assert.equal(existsSync(join(dir, 'hooks')), false, 'nothing written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hooks carry the run dir (--run-dir, else IPVISOR_RUN_DIR at install): libvirtd runs them with an environment of its own', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvrundir-'));
  try {
    // a stand-in entry that records the argv the script gives it
    const entry = join(dir, 'entry.cjs');
    writeFileSync(entry, `require('fs').writeFileSync(${JSON.stringify(join(dir, 'argv.json'))}, JSON.stringify(process.argv.slice(2)))\n`);
    const install = async (env: NodeJS.ProcessEnv, ...extra: string[]) => {
      let err = '';
      const code = await runCli(['--db', join(dir, 'db'), 'libvirt', 'install', '--hooks-dir', join(dir, 'hooks'), '--no-systemd', '--entry', entry, '--log', join(dir, 'hooks.log'), ...extra], { stdout: () => undefined, stderr: (x: string) => (err += x), env });
      assert.equal(code, 0, err);
      // run as libvirtd does: no IPVISOR_* variable reaches the hook
      execFileSync(join(dir, 'hooks', 'qemu.d', 'ipvisor'), ['vm1', 'prepare', 'begin', '-'], { input: '', env: { PATH: '/usr/bin:/bin' } });
      const argv = JSON.parse(readFileSync(join(dir, 'argv.json'), 'utf8')) as string[];
      const i = argv.indexOf('--run-dir');
      return i < 0 ? undefined : argv[i + 1];
    };
    const env = { ...process.env };
    delete env.IPVISOR_RUN_DIR;
    assert.equal(await install(env), undefined, 'the default run dir (/run/ipvisor) needs no argument');
    assert.equal(await install({ ...env, IPVISOR_RUN_DIR: join(dir, 'run-env') }), join(dir, 'run-env'));
    assert.equal(await install({ ...env, IPVISOR_RUN_DIR: join(dir, 'run-env') }, '--run-dir', join(dir, 'run-opt')), join(dir, 'run-opt'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('network create --driver libvirt: bad subnets are validation errors (exit 2, field named) before libvirt is asked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvcreate-'));
  // No libvirtd answers here: before the fix, the virsh failure (exit 1) came first.
  const env = { ...process.env, IPVISOR_LIBVIRT_URI: `qemu:///system?socket=${join(dir, 'no-libvirt-sock')}` };
  const saved = process.env.IPVISOR_LIBVIRT_URI;
  process.env.IPVISOR_LIBVIRT_URI = env.IPVISOR_LIBVIRT_URI;
  try {
    for (const [args, field] of [
      [['--subnet', 'bogus'], 'subnet'],
      [['--subnet', '10.0.0.0/33'], 'subnet'],
      [['--subnet', '10.0.0.0/30'], 'subnet'],
      [['--subnet', 'auto', '--ipv6', '10.9.0.0/24'], 'ipv6'],
      [['--subnet', 'auto', '--ipv6', 'fd00::/48'], 'ipv6'],
      [['--subnet', '10.9.0.0/24,gateway=10.8.0.1'], 'subnet.gateway'],
    ] as const) {
      let out = '';
      const code = await runCli(['--db', join(dir, 'db'), '--json', 'network', 'create', 'lab', '--driver', 'libvirt', ...args], { stdout: (x) => (out += x), stderr: (x) => (out += x), env });
      assert.equal(code, 2, `${args.join(' ')}: ${out}`);
      assert.equal(JSON.parse(out).error.field, field, args.join(' '));
    }
    let out = '';
    assert.equal(await runCli(['--db', join(dir, 'db'), 'network', 'list'], { stdout: (x) => (out += x), stderr: (x) => (out += x), env }), 0);
    assert.match(out, /no networks/);
  } finally {
    if (saved === undefined) delete process.env.IPVISOR_LIBVIRT_URI;
    else process.env.IPVISOR_LIBVIRT_URI = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('event stream lines that may bring a tap', () => {
  assert.equal(domainNeedingScan("event 'device-added' for domain 'lvdom1': net1"), 'lvdom1');
  assert.equal(domainNeedingScan("2026-11-23 03:35:04.202+0000: event 'lifecycle' for domain 'lvdom1': Started Booted"), 'lvdom1');
  assert.equal(domainNeedingScan("event 'lifecycle' for domain 'lvdom1': Stopped Destroyed"), undefined);
  assert.equal(domainNeedingScan("event 'reboot' for domain 'lvdom1'"), undefined);
  assert.equal(domainNeedingScan('events received: 3'), undefined);
});

test('agent host: hooks name the host and state directory (no store), the hardened agent unit replaces the serve unit; uninstall removes both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvagent-'));
  try {
    const { AGENT_UNIT, SERVE_UNIT, agentUnitTemplate, renderAgentUnit, renderServeUnit, serveUnitTemplate } = await import('../../src/agent/libvirt/install.js');
    const { parseHookInvocation } = await import('../../src/agent/libvirt/hook-main.js');
    const cmd = { node: '/usr/bin/node', nodeArgs: [], entry: '/opt/ipvisor/dist/libvirt-hook.cjs', agent: { host: 'hv 1', stateDir: '/srv/ipvisor state' }, log: '/var/log/ipvisor/libvirt-hooks.log' };
    const script = renderHookScript('qemu', cmd);
    assert.match(script, /exec '\/usr\/bin\/node' '\/opt\/ipvisor\/dist\/libvirt-hook\.cjs' 'libvirt-qemu' '--host' 'hv 1' '--state-dir' '\/srv\/ipvisor state' '--log' '\/var\/log\/ipvisor\/libvirt-hooks\.log' -- "\$@"/);
    assert.doesNotMatch(script, /--db|ipvisor\.db/);
    // what the hook entry reads from that command line (the shell passes each quoted word as one)
    const inv = parseHookInvocation(['libvirt-qemu', '--host', 'hv 1', '--state-dir', '/srv/ipvisor state', '--log', '/l', '--', 'vm1', 'started', 'begin', '-'], {});
    assert.deepEqual({ agent: inv?.agent, db: inv?.db, args: inv?.args }, { agent: { host: 'hv 1', stateDir: '/srv/ipvisor state' }, db: undefined, args: ['vm1', 'started', 'begin', '-'] });

    // the rendered agent unit: the shipped hardening, ExecStart running this checkout's agent
    const agentUnit = renderAgentUnit(agentUnitTemplate(), { execStart: ['/usr/bin/node', '/opt/ipvisor/bin/ipvisor', 'agent'] });
    assert.match(agentUnit, /^ExecStart=\/usr\/bin\/node \/opt\/ipvisor\/bin\/ipvisor agent \$IPVISOR_AGENT_ARGS$/m);
    for (const line of ['ProtectSystem=strict', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW', 'Conflicts=ipvisor-serve.service', 'EnvironmentFile=-/etc/default/ipvisor-agent']) assert.ok(agentUnit.split('\n').includes(line), line);
    assert.ok(agentUnit.startsWith(HOOK_MARKER));
    assert.throws(() => renderAgentUnit(serveUnitTemplate(), { execStart: ['/x'] }), /no 'ExecStart=\.\.\. agent '/);

    // the CLI: a serve unit an earlier install wrote goes, the agent unit and a state-dir drop-in come
    const hooks = join(dir, 'hooks');
    const sd = join(dir, 'sd');
    mkdirSync(sd, { recursive: true });
    writeFileSync(join(sd, SERVE_UNIT), renderServeUnit(serveUnitTemplate(), { execStart: ['/usr/bin/node', '/opt/ipvisor/bin/ipvisor', 'serve'] }));
    const entry = join(dir, 'hook.cjs');
    writeFileSync(entry, '');
    const state = join(dir, 'state');
    let out = '';
    const io = { stdout: (x: string) => (out += x), stderr: (x: string) => (out += x), env: { ...process.env, IPVISOR_STATE_DIR: join(dir, 'no-agent-here') } };
    const code = await runCli(['--json', 'libvirt', 'install', '--agent', '--host', 'hv1', '--state-dir', state, '--hooks-dir', hooks, '--systemd-dir', sd, '--entry', entry, '--log', join(dir, 'hook.log')], io);
    assert.equal(code, 0, out);
    const res = JSON.parse(out);
    assert.deepEqual(res.agent, { host: 'hv1', stateDir: state });
    assert.equal(res.db, undefined);
    assert.ok(res.removed.includes(join(sd, SERVE_UNIT)), 'the serve unit libvirt install wrote before is gone');
    assert.ok(!existsSync(join(sd, SERVE_UNIT)));
    const unit = readFileSync(join(sd, AGENT_UNIT), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[/.]/g, '\\$&')} \\S+/bin/ipvisor agent \\$IPVISOR_AGENT_ARGS$`, 'm'));
    assert.match(unit, /^ProtectSystem=strict$/m);
    assert.equal(readFileSync(join(sd, `${AGENT_UNIT}.d`, '10-ipvisor-libvirt-install.conf'), 'utf8'), `${HOOK_MARKER}\n[Service]\nEnvironment=IPVISOR_STATE_DIR=${state}\nReadWritePaths=${state}\n`);
    for (const kind of ['network', 'qemu']) {
      const s = readFileSync(join(hooks, `${kind}.d`, 'ipvisor'), 'utf8');
      assert.match(s, new RegExp(`'libvirt-${kind}' '--host' 'hv1' '--state-dir' '${state.replace(/[/.]/g, '\\$&')}'`));
      assert.doesNotMatch(s, /--db/);
    }
    // one-box settings have no place on an agent host; --host alone is not an agent host
    out = '';
    assert.equal(await runCli(['libvirt', 'install', '--agent', '--refuse-disabled', '--hooks-dir', hooks, '--no-systemd', '--entry', entry], io), 2, out);
    assert.match(out, /refuse-disabled: /);
    out = '';
    assert.equal(await runCli(['--db', join(dir, 'db'), 'libvirt', 'install', '--host', 'hv1', '--hooks-dir', join(dir, 'h2'), '--no-systemd', '--entry', entry], io), 2, out);
    assert.match(out, /host: goes with --agent/);
    // back to one box: the serve unit returns and the agent unit libvirt install wrote goes
    out = '';
    assert.equal(await runCli(['--db', join(dir, 'db', 'ipvisor.db'), '--json', 'libvirt', 'install', '--hooks-dir', hooks, '--systemd-dir', sd, '--entry', entry], io), 0, out);
    assert.ok(existsSync(join(sd, SERVE_UNIT)) && !existsSync(join(sd, AGENT_UNIT)) && !existsSync(join(sd, `${AGENT_UNIT}.d`, '10-ipvisor-libvirt-install.conf')));
    assert.match(readFileSync(join(hooks, 'qemu.d', 'ipvisor'), 'utf8'), /'--db' /);
    // uninstall: both kinds of unit are ours to remove
    await runCli(['--json', 'libvirt', 'install', '--agent', '--host', 'hv1', '--state-dir', state, '--hooks-dir', hooks, '--systemd-dir', sd, '--entry', entry], io);
    out = '';
    assert.equal(await runCli(['--json', 'libvirt', 'uninstall', '--hooks-dir', hooks, '--systemd-dir', sd], io), 0, out);
    assert.deepEqual(JSON.parse(out).removed.sort(), [join(hooks, 'network.d', 'ipvisor'), join(hooks, 'qemu.d', 'ipvisor'), join(sd, AGENT_UNIT), join(sd, `${AGENT_UNIT}.d`, '10-ipvisor-libvirt-install.conf')].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('libvirt watcher: lifecycle lines that stop a domain here (not a migration away), and the fact a domain makes', async () => {
  const { stoppedDomain, hotplugDomain, domainFact } = await import('../../src/agent/libvirt/watcher.js');
  const { parseHostFact } = await import('../../src/core/model/validate.js');
  assert.equal(stoppedDomain("event 'lifecycle' for domain 'web1': Stopped Destroyed"), 'web1');
  assert.equal(stoppedDomain("2026-11-29 10:00:00.000+0000: event 'lifecycle' for domain 'web1': Stopped Shutdown"), 'web1');
  assert.equal(stoppedDomain("event 'lifecycle' for domain 'web1': Crashed Panicked"), 'web1');
  assert.equal(stoppedDomain("event 'lifecycle' for domain 'web1': Stopped Migrated"), undefined, 'the target has it now');
  assert.equal(stoppedDomain("event 'lifecycle' for domain 'web1': Started Booted"), undefined);
  assert.equal(hotplugDomain("event 'device-removed' for domain 'web1': net1"), 'web1');
  const dom = { name: 'web1', uuid: '6A1E0000-0000-4000-8000-0000000000A1', id: 3, interfaces: [{ type: 'network', mac: '52:54:00:71:00:01', network: 'lvt', bridge: 'virbr9', portid: null, target: 'vnet4', alias: 'net0' }] };
  const fact = domainFact('hv1', dom, 'running', '2026-11-29T10:00:00.000Z');
  // what the server accepts is what the agent sends (values are judged later, like a hook's XML)
  assert.deepEqual(parseHostFact(JSON.parse(JSON.stringify(fact))), fact);
  for (const [bad, field] of [
    [{ ...fact, state: 'paused' }, 'fact.state'],
    [{ ...fact, host: '' }, 'fact.host'],
    [{ ...fact, time: 'yesterday' }, 'fact.time'],
    [{ ...fact, domain: { ...fact.domain, interfaces: [{ ...fact.domain.interfaces[0], target: 42 }] } }, 'fact.domain.interfaces[0].target'],
    [{ ...fact, domain: { ...fact.domain, name: 'x'.repeat(2000) } }, 'fact.domain.name'],
    [{ ...fact, kind: 'teleport' }, 'fact.kind'],
  ] as const) {
    assert.throws(() => parseHostFact(bad), (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && (e as IpvisorError & { field?: string }).field === field, field);
  }
});
