// ipvisor doctor against a network namespace with each condition set up: forwarding off while the store
// routes addresses, a missing proxy neighbour, Docker's FORWARD DROP policy, firewalld's table,
// br_netfilter, an old or missing nft, a store with a newer schema, libvirt's firewall backend.
// Root only; the namespaces and temp files are removed in `after`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { cliInEnv } from '../support/cli.js';
import { openStore } from '../../src/core/store/open.js';
import { network, seedRoutedVif } from '../compile/fixtures.js';
import { Topology, netnsSkipReason, useHostEnv } from '../support/netns.js';
import { certificateFinding, clockSkewFinding, parseIproute2Version, parseLibvirtFirewallBackend, parseNftVersion } from '../../src/agent/doctor.js';
import type { Finding } from '../../src/agent/doctor.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = await netnsSkipReason();

test('version parsers, libvirt backend, clock skew and certificate findings', () => {
  assert.deepEqual(parseNftVersion('nftables v1.0.6 (Lester Gooch #5)'), [1, 0, 6]);
  assert.deepEqual(parseIproute2Version('ip utility, iproute2-6.1.0, libbpf 1.1.0'), [6, 1, 0]);
  assert.deepEqual(parseIproute2Version('ip utility, iproute2-ss200127'), [4, 0, 0]);
  assert.equal(parseLibvirtFirewallBackend('# firewall_backend = "iptables"\nfirewall_backend = "nftables"\n'), 'nftables');
  assert.equal(parseLibvirtFirewallBackend('#firewall_backend = "nftables"\n'), null);
  const t = new Date('2026-01-01T00:00:00Z');
  assert.equal(clockSkewFinding(t, new Date(t.getTime() - 3000)).severity, 'ok');
  const skew = clockSkewFinding(t, new Date(t.getTime() + 9000));
  assert.equal(skew.severity, 'error');
  assert.match(skew.message, /9\.0 s behind/);
  assert.equal(certificateFinding('server certificate', new Date('2025-01-01'), new Date('2025-12-31'), t).severity, 'error');
  assert.equal(certificateFinding('server certificate', new Date('2025-01-01'), new Date('2026-01-05'), t).severity, 'warn');
  assert.equal(certificateFinding('server certificate', new Date('2025-01-01'), new Date('2027-01-01'), t).severity, 'ok');
});

describe('ipvisor doctor in a network namespace', { skip: skip ?? false }, () => {
  const topo = new Topology();
  const dir = mkdtempSync(join(tmpdir(), 'ipv-doctor-'));
  const db = join(dir, 'db.sqlite');
  let restoreEnv = () => {};

  before(async () => {
    await topo.create();
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: dir, IPVISOR_DB: db });
    const vm1 = await topo.addVm('d1', '52:54:00:dd:00:01', { addresses: ['10.61.0.10/24'] });
    const up = await topo.addUpstream('198.18.1.1/24', ['198.18.1.2/24']);
    const store = await openStore(db, { create: true });
    const net = network({ name: 'pub', bridge: topo.bridge, mode: 'routed', uplink: up.uplink, subnets: [{ cidr: '10.61.0.0/24', family: 4, gateway: '10.61.0.1' }] });
    await seedRoutedVif(store, net, { vm: 'd', mac: vm1.mac, ifname: vm1.vif, address: '10.61.0.10', routed: '203.0.113.6' });
    await store.close();
  });

  after(async () => {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
    restoreEnv();
  });

  async function doctor(...extra: string[]): Promise<{ code: number; findings: Finding[]; out: string }> {
    const r = await cliInEnv(['doctor', '--json', ...extra]);
    const res = JSON.parse(r.out);
    assert.equal(res.blocking, r.code === 1, 'exit 1 exactly when something blocks');
    return { code: r.code, findings: res.findings, out: r.out };
  }
  const find = (fs: Finding[], check: string, re?: RegExp) => fs.filter((f) => f.check === check && (!re || re.test(f.message)));

  test('forwarding off while the store routes addresses: error naming ip_forward, exit 1, findings on stdout', async () => {
    await topo.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    const r = await doctor();
    assert.equal(r.code, 1);
    const fwd = find(r.findings, 'sysctl', /^net\.ipv4\.ip_forward is 0, should be 1/);
    assert.equal(fwd.length, 1, JSON.stringify(r.findings));
    assert.equal(fwd[0].severity, 'error');
    assert.match(fwd[0].fix!, /ipvisor apply/);
    const proxy = find(r.findings, 'proxy-neighbour');
    assert.equal(proxy[0].severity, 'error');
    assert.match(proxy[0].message, /203\.0\.113\.6 on /);
    assert.equal(find(r.findings, 'store')[0].severity, 'ok');
    // text: one finding a line with its fix
    const text = await cliInEnv(['doctor']);
    assert.equal(text.code, 1);
    assert.match(text.out, /^ERROR sysctl: net\.ipv4\.ip_forward is 0, should be 1: .* -> ipvisor apply/m);
    assert.ok(text.out.trim().split('\n').every((l) => /^(OK|INFO|WARN|ERROR) +[a-z0-9_-]+: /.test(l)), text.out);
  });

  test('after apply: nothing blocks; turning ip_forward off again is found', async () => {
    const a = await cliInEnv(['apply']);
    assert.equal(a.code, 0, a.err);
    const r = await doctor();
    assert.equal(r.code, 0, JSON.stringify(r.findings.filter((f) => f.severity === 'error')));
    assert.equal(find(r.findings, 'sysctl', /^net\.ipv4\.ip_forward = 1$/).length, 1);
    assert.equal(find(r.findings, 'proxy-neighbour')[0].severity, 'ok');
    await topo.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
    assert.equal((await doctor()).code, 1);
    await topo.inHost(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  });

  test("Docker's FORWARD DROP policy: a warning naming DOCKER-USER", async () => {
    const hasIptables = spawnSync('sh', ['-c', 'command -v iptables']).status === 0;
    assert.ok(hasIptables, 'iptables is in .ci/apt-host.txt');
    await topo.inHost(['iptables', '-w', '-N', 'DOCKER-USER']);
    await topo.inHost(['iptables', '-w', '-A', 'FORWARD', '-j', 'DOCKER-USER']);
    await topo.inHost(['iptables', '-w', '-P', 'FORWARD', 'DROP']);
    try {
      const r = await doctor();
      const f = find(r.findings, 'forward-policy', /^iptables FORWARD has Docker's DROP policy/);
      assert.equal(f.length, 1, JSON.stringify(r.findings));
      assert.equal(f[0].severity, 'warn');
      assert.match(f[0].message, /forwarded traffic of routed and NAT networks/);
      assert.match(f[0].fix!, /DOCKER-USER/);
    } finally {
      await topo.inHost(['iptables', '-w', '-P', 'FORWARD', 'ACCEPT']);
      await topo.inHost(['iptables', '-w', '-F', 'FORWARD']);
      await topo.inHost(['iptables', '-w', '-X', 'DOCKER-USER']);
    }
    assert.equal(find((await doctor()).findings, 'forward-policy').length, 0);
  });

  test("firewalld's table: a warning with the trusted-zone fix", async () => {
    assert.equal(find((await doctor()).findings, 'firewalld').length, 0);
    await topo.inHost(['nft', 'add', 'table', 'inet', 'firewalld']);
    try {
      const f = find((await doctor()).findings, 'firewalld');
      assert.equal(f.length, 1);
      assert.equal(f[0].severity, 'warn');
      assert.match(f[0].fix!, /--zone=trusted --add-interface/);
    } finally {
      await topo.inHost(['nft', 'delete', 'table', 'inet', 'firewalld']);
    }
  });

  test('br_netfilter: bridge-nf-call-iptables explained per namespace', async () => {
    const loaded = spawnSync('sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']).status === 0;
    const f0 = find((await doctor()).findings, 'br_netfilter');
    assert.equal(f0.length, 1);
    if (!loaded) {
      assert.match(f0[0].message, /not loaded/);
      return;
    }
    await topo.inHost(['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=1']);
    const on = find((await doctor()).findings, 'br_netfilter')[0];
    assert.equal(on.severity, 'info');
    assert.match(on.message, /bridge-nf-call-iptables=1/);
    await topo.inHost(['sysctl', '-q', '-w', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0']);
    const off = find((await doctor()).findings, 'br_netfilter')[0];
    assert.equal(off.severity, 'ok');
    assert.match(off.message, /bridge-nf-call-iptables=0/);
  });

  test('nft missing or too old: error with the package to install', async () => {
    const bin = join(dir, 'bin');
    rmSync(bin, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', bin]);
    for (const t of ['ip', 'sysctl', 'iptables', 'ip6tables']) {
      const w = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
      if (w) symlinkSync(w, join(bin, t));
    }
    const path = process.env.PATH;
    process.env.PATH = bin;
    try {
      const missing = await doctor();
      assert.equal(missing.code, 1);
      const f = find(missing.findings, 'nft')[0];
      assert.equal(f.severity, 'error');
      assert.equal(f.fix, 'apt-get install nftables');
      writeFileSync(join(bin, 'nft'), '#!/bin/sh\necho "nftables v0.9.0 (Fearless Fosdick)"\n');
      chmodSync(join(bin, 'nft'), 0o755);
      const old = find((await doctor()).findings, 'nft')[0];
      assert.equal(old.severity, 'error');
      assert.match(old.message, /^nft 0\.9\.0 is older than 1\.0\.0/);
    } finally {
      process.env.PATH = path;
    }
    assert.equal(find((await doctor()).findings, 'nft')[0].severity, 'ok');
  });

  test("libvirt's firewall backend is read from network.conf", async () => {
    const conf = join(dir, 'network.conf');
    writeFileSync(conf, 'firewall_backend = "nftables"\n');
    const restore = useHostEnv({ IPVISOR_LIBVIRT_NETWORK_CONF: conf } as never);
    try {
      const f = find((await doctor()).findings, 'libvirt')[0];
      assert.equal(f.severity, 'info');
      assert.match(f.message, /firewall backend is nftables/);
    } finally {
      restore();
    }
  });

  test('store: absent is a warning, a newer schema or an unreadable file blocks; nothing is created or migrated', async () => {
    const viaUrl = await doctor('--store', `sqlite:${db}`);
    assert.match(find(viaUrl.findings, 'store')[0].message, /reachable, schema version \d+$/);
    const other = join(dir, 'other.db');
    const absent = await doctor('--db', other);
    assert.match(find(absent.findings, 'store')[0].message, /^no store at /);
    assert.equal(find(absent.findings, 'store')[0].severity, 'warn');
    assert.equal(spawnSync('test', ['-e', other]).status, 1, 'doctor created no store');
    const raw = new Database(other);
    raw.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '999')");
    raw.close();
    const newer = await doctor('--db', other);
    assert.equal(newer.code, 1);
    assert.match(find(newer.findings, 'store')[0].message, /schema version 999, this ipvisor knows up to \d+/);
    writeFileSync(other, 'not a database at all, just some text that is long enough to have a header');
    const bad = await doctor('--db', other);
    assert.equal(bad.code, 1);
    assert.match(find(bad.findings, 'store')[0].message, /cannot be read/);
  });
});
