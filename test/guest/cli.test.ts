// `ipvisor guest ...` through the CLI in-process: network_data.json from the store, render, and a
// live push into a stand-in guest (real qemu-ga in its own network and mount namespaces).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { cli, tempDb } from '../support/cli.js';
import { standinUnavailable, startStandinGuest, type StandinGuest } from './standin.js';
import { guardRootNamespace, privateRunDir } from '../support/root-guard.js';

guardRootNamespace();
// guest pushes take a per-VM lock in the run dir: this file's, not the machine's /run/ipvisor
privateRunDir();

const MAC = '52:54:00:aa:bb:01';

describe('guest CLI', () => {
  const { db, cleanup } = tempDb();
  const dir = mkdtempSync(join(tmpdir(), 'ipvisor-guest-cli-'));
  after(() => {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  before(async () => {
    const ok = async (...a: string[]) => {
      const r = await cli(db, ...a);
      assert.equal(r.code, 0, `${a.join(' ')}: ${r.stderr}`);
    };
    await ok('network', 'create', 'lan', '--subnet', '203.0.113.0/24,gateway=203.0.113.1', '--subnet', '2001:db8:10::/64,gateway=fe80::1', '--dns', '192.0.2.53', '--mtu', '1400', '--route', '10.99.0.0/16,via=203.0.113.254');
    await ok('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '203.0.113.0/24');
    await ok('pool', 'create', 'lan6', '--network', 'lan', '--cidr', '2001:db8:10::/64');
    await ok('vm', 'add', 'web1');
    await ok('vif', 'add', 'web1', '--network', 'lan', '--mac', MAC);
    await ok('ip', 'allocate', '--vif', 'web1:0', '--family', '4');
    await ok('ip', 'allocate', '--vif', 'web1:0', '--family', '6');
  });

  test('network-data: a link per VIF, a network per address, routes and DNS from the network', async () => {
    const r = await cli(db, 'guest', 'network-data', 'web1', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.links.map((l: any) => [l.id, l.ethernet_mac_address, l.mtu, l.type]), [['interface0', MAC, 1400, 'phy']]);
    assert.deepEqual(
      r.json.networks.map((n: any) => [n.type, n.ip_address, n.netmask, n.routes.map((x: any) => `${x.network}/${x.netmask} via ${x.gateway}`)]),
      [
        ['ipv4', '203.0.113.2', '255.255.255.0', ['0.0.0.0/0.0.0.0 via 203.0.113.1', '10.99.0.0/255.255.0.0 via 203.0.113.254']],
        ['ipv6', '2001:db8:10::1', 'ffff:ffff:ffff:ffff::', ['::/:: via fe80::1']],
      ],
    );
    assert.deepEqual(r.json.services, [{ type: 'dns', address: '192.0.2.53' }]);
    // and it parses back into the IR the renderers use
    const s = parseNetworkData(r.json, { nicNames: { [MAC]: 'ens3' } });
    assert.equal(s.interfaces[0]!.name, 'ens3');
    assert.deepEqual(s.interfaces[0]!.addresses.map((a) => `${a.address}/${a.prefixLength}`), ['203.0.113.2/24', '2001:db8:10::1/64']);
  });

  test('render --vm --format netplan --nic writes a netplan file matching by MAC', async () => {
    const out = join(dir, 'root');
    const r = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'netplan', '--nic', `ens3=${MAC.toUpperCase()}`, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const file = join(out, 'etc/netplan/50-ipvisor.yaml');
    const y = readFileSync(file, 'utf8');
    assert.match(y, /ens3:\n {6}match:\n {8}macaddress: 52:54:00:aa:bb:01\n {6}set-name: ens3\n {6}mtu: 1400/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('render --input prints every file; bad input is one line naming the element, exit 2', async () => {
    const f = join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify({ links: [{ id: 'a', type: 'phy', ethernet_mac_address: '02:00:00:00:00:01' }], networks: [{ id: 'n', link: 'a', type: 'ipv4', ip_address: '10.0.0.2', netmask: '255.0.255.0' }] }));
    const r = await cli(db, 'guest', 'render', '--input', f, '--format', 'eni', '--json');
    assert.equal(r.code, 2);
    assert.equal(r.error?.field, 'networks[0].netmask');
    assert.match(r.error!.message, /not a contiguous mask/);
    const r2 = await cli(db, 'guest', 'render', '--input', f, '--format', 'yaml');
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /format: 'yaml' is not a format/);
    const r3 = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'ip', '--nic', 'eth0=nonsense');
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /nic: 'nonsense' is not a MAC address/);
  });

  test('render --input of a network on a bond member (Ironic sample 24): rendered on the bond, warning on stderr and in --json', async () => {
    const f = join(dir, 'member.json');
    writeFileSync(f, JSON.stringify({
      links: [{ id: 'a', type: 'phy', ethernet_mac_address: '02:00:00:00:00:01' }, { id: 'b', type: 'phy', ethernet_mac_address: '02:00:00:00:00:02' }, { id: 'bd', type: 'bond', bond_links: ['a', 'b'], bond_mode: '1' }],
      networks: [{ id: 'n', link: 'a', type: 'ipv4', ip_address: '10.0.0.2', netmask: '255.255.255.0' }],
    }));
    const r = await cli(db, 'guest', 'render', '--input', f, '--format', 'ip');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ip -4 addr replace 10\.0\.0\.2\/24 dev bond0\n/);
    assert.equal(r.stderr, "guest: warning: networks[0].link: 'a' is a member of bond 'bd'; its ipv4 network is configured on the bond\n");
    const j = await cli(db, 'guest', 'render', '--input', f, '--format', 'ip', '--json');
    assert.deepEqual(j.json.warnings, ["networks[0].link: 'a' is a member of bond 'bd'; its ipv4 network is configured on the bond"]);
  });

  test('render --out sets the mode of each file, also over an existing file; --json lists the files', async () => {
    const out = join(dir, 'modes');
    const nmFile = join(out, 'etc/NetworkManager/system-connections/ipvisor-eth0.nmconnection');
    mkdirSync(dirname(nmFile), { recursive: true });
    writeFileSync(nmFile, 'old', { mode: 0o644 });
    const r = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'nm', '--out', out, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.files, [nmFile]);
    assert.equal(statSync(nmFile).mode & 0o777, 0o600);
    assert.match(readFileSync(nmFile, 'utf8'), /mac-address=52:54:00:AA:BB:01/);
    const s = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'sysconfig', '--out', out);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(statSync(join(out, 'etc/sysconfig/network-scripts/ifcfg-eth0')).mode & 0o777, 0o644);
    const ip = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'ip', '--out', out);
    assert.equal(ip.code, 0, ip.stderr);
    assert.equal(statSync(join(out, 'ipvisor-apply.sh')).mode & 0o777, 0o755);
  });

  test('--nic naming a MAC the document lacks, or one MAC twice, is rejected (exit 2)', async () => {
    const r = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'netplan', '--nic', 'ens9=02:00:00:00:00:99');
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'ipvisor: nic: ens9=02:00:00:00:00:99: no physical link has MAC 02:00:00:00:00:99\n');
    const r2 = await cli(db, 'guest', 'render', '--vm', 'web1', '--format', 'netplan', '--nic', `a=${MAC}`, '--nic', `b=${MAC.toUpperCase()}`);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /nic: MAC 52:54:00:aa:bb:01 is named twice \(a, b\)/);
    // push checks the same before it talks to the guest
    const p = await cli(db, 'guest', 'push', 'web1', '--socket', join(dir, 'none.sock'), '--nic', 'ens9=02:00:00:00:00:99');
    assert.equal(p.code, 2);
    assert.match(p.stderr, /nic: ens9=02:00:00:00:00:99: no physical link has MAC/);
  });

  test('push to a socket that does not exist: one line, exit 1 (DRIVER), also with --dry-run and --json', async () => {
    const sock = join(dir, 'no-such.sock');
    const r = await cli(db, 'guest', 'push', 'web1', '--socket', sock, '--dry-run');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot connect to ${sock}`));
    const j = await cli(db, 'guest', 'push', 'web1', '--socket', sock, '--json');
    assert.equal(j.code, 1);
    assert.equal(j.error?.code, 'DRIVER');
  });

  describe('push into a stand-in guest', { skip: standinUnavailable() ?? false }, () => {
    let g: StandinGuest;
    before(async () => {
      g = await startStandinGuest(MAC);
      await g.ip('addr', 'add', '198.51.100.10/24', 'dev', 'eth0');
      await g.ip('route', 'add', 'default', 'via', '198.51.100.1');
    });
    after(async () => g?.stop());

    const observe = async () => {
      const [a] = JSON.parse(await g.ip('-j', 'addr', 'show', 'dev', 'eth0')) as any[];
      const routes = (JSON.parse(await g.ip('-j', '-4', 'route', 'show', 'dev', 'eth0')) as any[]).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`);
      return { mtu: a.mtu, addrs: a.addr_info.filter((i: any) => i.scope === 'global').map((i: any) => `${i.local}/${i.prefixlen}`).sort(), routes: routes.sort() };
    };

    test('guest push VM --socket changes the running guest, and a new assignment is pushed too', async () => {
      const dry = await cli(db, 'guest', 'push', 'web1', '--socket', g.socket, '--dry-run');
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /==> apply \(run live\) <==/);
      assert.deepEqual((await observe()).addrs, ['198.51.100.10/24']);

      const r = await cli(db, 'guest', 'push', 'web1', '--socket', g.socket, '--format', 'eni', '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.applied, true);
      assert.deepEqual(await observe(), { mtu: 1400, addrs: ['2001:db8:10::1/64', '203.0.113.2/24'], routes: ['10.99.0.0/16 via 203.0.113.254', 'default via 203.0.113.1'] });

      assert.equal((await cli(db, 'ip', 'release', '203.0.113.2')).code, 0);
      assert.equal((await cli(db, 'ip', 'allocate', '--vif', 'web1:0', '--family', '4', '--address', '203.0.113.77')).code, 0);
      const r2 = await cli(db, 'guest', 'push', 'web1', '--socket', g.socket);
      assert.equal(r2.code, 0, r2.stderr);
      assert.deepEqual((await observe()).addrs, ['2001:db8:10::1/64', '203.0.113.77/24']);
    });

    test('two pushes of one VM at once both succeed, one after the other', async () => {
      const [a, b] = await Promise.all([cli(db, 'guest', 'push', 'web1', '--socket', g.socket, '--timeout', '5'), cli(db, 'guest', 'push', 'web1', '--socket', g.socket, '--timeout', '5')]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      assert.deepEqual((await observe()).addrs, ['2001:db8:10::1/64', '203.0.113.77/24']);
    });
  });
});
