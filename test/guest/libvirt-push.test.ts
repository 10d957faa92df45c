// `ipvisor guest push` through libvirt's agent channel (virsh qemu-agent-command): a real libvirtd
// (confined to its own namespaces by the libvirt test harness) runs a tiny TCG guest whose
// initramfs carries the real qemu-ga on the org.qemu.guest_agent.0 virtio port. The push changes
// the guest's address and MTU through libvirt, which holds the agent socket.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { skipUnless } from '../support/skip.js';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GuestAgent, QgaVirsh } from '../../src/agent/guest/qga.js';
import { pushNetworkData } from '../../src/agent/guest/push.js';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { compareApplied, guestKernelState } from './applied.js';
import { ensureGuest, GUEST_DIR, libvirtSkipReason, startLibvirtHarness, type LibvirtHarness } from '../support/libvirt/daemon.js';
import { cli, tempDb } from '../support/cli.js';
import { guardRootNamespace, privateRunDir } from '../support/root-guard.js';

// nothing outside the test's namespaces and temp dirs (guest pushes take their lock in a run dir of the test's own)
guardRootNamespace();
privateRunDir();

const DOMAIN = 'ipvisor-gpush';
const MAC = '52:54:00:71:00:01';
const MAC2 = '52:54:00:71:00:02';
const AGENT_DIR = process.env.IPVISOR_TEST_AGENT_GUEST_DIR ?? '/var/cache/ipvisor-test/guest-agent';
const skip = libvirtSkipReason() || skipUnless(!existsSync('/usr/sbin/qemu-ga') && 'qemu-ga is not installed (qemu-guest-agent)');

function domainXml(kernel: string, initrd: string, serialLog: string): string {
  return `<domain type='qemu'>
  <name>${DOMAIN}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${kernel}</kernel><initrd>${initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet rdinit=/agent-init</cmdline></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='user'><mac address='${MAC}'/><model type='virtio'/></interface>
    <interface type='user'><mac address='${MAC2}'/><model type='virtio'/></interface>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pty'><log file='${serialLog}' append='off'/></serial>
    <console type='pty'/>
  </devices>
</domain>`;
}

test('guest push through libvirt agent channel changes a running domain; bonds and VLANs are created live and removed on rollback', { skip: skip ?? false, timeout: 900_000 }, async () => {
  const g = ensureGuest();
  const build = spawnSync('bash', [new URL('./build-agent-guest.sh', import.meta.url).pathname, GUEST_DIR, AGENT_DIR], { stdio: ['ignore', 'inherit', 'inherit'] });
  assert.equal(build.status, 0, 'building the agent guest');
  const work = mkdtempSync(join(tmpdir(), 'ipvisor-gpush-'));
  const { db, cleanup } = tempDb();
  let h: LibvirtHarness | undefined;
  try {
    h = await startLibvirtHarness({ name: 'gpush' });
    writeFileSync(join(work, 'dom.xml'), domainXml(g.kernel, join(AGENT_DIR, 'agent-initrd.img'), join(h.dir, 'gpush-serial.log')));
    await h.virsh('create', join(work, 'dom.xml'));
    const agent = new GuestAgent(new QgaVirsh(DOMAIN, { uri: h.uri }));
    const deadline = Date.now() + 180_000;
    for (;;) {
      try {
        await agent.ping(2000);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`the guest agent never answered through libvirt: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const eth0 = async () => (await agent.interfaces()).find((i) => i['hardware-address'] === MAC)!;
    assert.deepEqual((await eth0())['ip-addresses']?.filter((a) => a['ip-address-type'] === 'ipv4').map((a) => a['ip-address']), ['198.51.100.10']);

    const ok = async (...a: string[]) => {
      const r = await cli(db, ...a);
      assert.equal(r.code, 0, `${a.join(' ')}: ${r.stderr}`);
      return r;
    };
    await ok('network', 'create', 'lan', '--subnet', '203.0.113.0/24,gateway=203.0.113.1', '--mtu', '1400');
    await ok('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '203.0.113.0/24');
    await ok('vm', 'add', DOMAIN);
    await ok('vif', 'add', DOMAIN, '--network', 'lan', '--mac', MAC);
    await ok('ip', 'allocate', '--vif', `${DOMAIN}:0`, '--address', '203.0.113.9');
    const r = await ok('guest', 'push', DOMAIN, '--connect', h.uri, '--json');
    assert.match(r.json.via, new RegExp(`libvirt domain ${DOMAIN}`));
    assert.equal(r.json.format, 'eni');
    assert.deepEqual((await eth0())['ip-addresses']?.filter((a) => a['ip-address-type'] === 'ipv4').map((a) => `${a['ip-address']}/${a.prefix}`), ['203.0.113.9/24']);
    const link = JSON.parse((await agent.exec('ip', ['-j', 'link', 'show', 'dev', 'eth0'])).stdout)[0];
    assert.equal(link.mtu, 1400);

    // NIC lifecycle on the real guest. eth1 moves onto slirp's network (10.0.2.0/24) and pings
    // slirp's gateway from inside the guest during every push: lost replies must be zero.
    const nic = (id: string, mac: string, mtu?: number) => ({ id, type: 'phy', ethernet_mac_address: mac, ...(mtu ? { mtu } : {}) });
    const v4net = (id: string, l: string, ip: string, routes: unknown[] = []) => ({ id, link: l, type: 'ipv4', ip_address: ip, netmask: '255.255.255.0', routes });
    const life = (extra: { links: unknown[]; networks: unknown[] }, services: unknown[] = [{ type: 'dns', address: '203.0.113.53' }]) => ({
      links: [nic('p0', MAC, 1400), nic('p1', MAC2), ...extra.links],
      networks: [v4net('n0', 'p0', '203.0.113.9', [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '203.0.113.1' }]), v4net('n1', 'p1', '10.0.2.15'), ...extra.networks],
      services,
    });
    const namesNow = async () => Object.fromEntries((await agent.interfaces()).filter((i) => i['hardware-address']).map((i) => [i['hardware-address']!.toLowerCase(), i.name]));
    const pushAndCount = async (d: unknown): Promise<{ lost: number; sent: number; diffs: string[] }> => {
      const pid = await agent.spawn('ping', ['-c', '25', '-W', '1', '10.0.2.2'], { capture: true });
      await pushNetworkData(agent, d, { format: 'eni', guardSeconds: 120, verifyTimeoutMs: 60_000 });
      const out = (await agent.wait(pid, 60_000)).stdout;
      const m = /(\d+) packets transmitted, (\d+) (packets )?received/.exec(out);
      assert.ok(m, `ping in the guest printed no summary: ${out}`);
      const state = parseNetworkData(d, { nicNames: await namesNow() });
      return { sent: Number(m[1]), lost: Number(m[1]) - Number(m[2]), diffs: compareApplied(state, await guestKernelState(agent), { resolver: true }) };
    };
    await pushNetworkData(agent, life({ links: [], networks: [] }), { format: 'eni' });
    const baseline = (await agent.exec('ping', ['-c', '2', '-W', '2', '10.0.2.2'])).stdout;
    assert.match(baseline, /2 packets transmitted, 2 (packets )?received/, 'slirp answers pings from eth1');

    const MAC3 = '52:54:00:71:00:03';
    const nicXml = join(work, 'nic3.xml');
    writeFileSync(nicXml, `<interface type='user'><mac address='${MAC3}'/><model type='virtio'/></interface>`);
    await h.virsh('attach-device', DOMAIN, nicXml, '--live');
    const seenBy = Date.now() + 60_000;
    while (!(MAC3 in (await namesNow()))) {
      assert.ok(Date.now() < seenBy, 'the hot-added NIC never showed up in the guest');
      await new Promise((r) => setTimeout(r, 500));
    }
    const withNew = life({ links: [nic('p2', MAC3)], networks: [v4net('n2', 'p2', '10.77.0.5')] });
    let res = await pushAndCount(withNew);
    assert.deepEqual(res.diffs, [], 'hot-add: applied state');
    assert.equal(res.lost, 0, `hot-add: lost ${res.lost} of ${res.sent}`);

    const dhcpv6 = life({
      links: [nic('p2', MAC3)],
      networks: [v4net('n2', 'p2', '10.77.0.5'), { id: 'n3', link: 'p2', type: 'ipv6_dhcpv6-stateful', ip_address: '2001:db8:77::5', netmask: 'ffff:ffff:ffff:ffff::', routes: [{ network: '2001:db8:99::', netmask: 'ffff:ffff:ffff::', gateway: '2001:db8:77::1' }] }],
    });
    res = await pushAndCount(dhcpv6);
    assert.deepEqual(res.diffs, [], 'DHCPv6 document: applied state');
    assert.equal(res.lost, 0);

    const mtuDns = life({ links: [nic('p2', MAC3, 1300)], networks: [v4net('n2', 'p2', '10.77.0.5')] }, [{ type: 'dns', address: '10.77.0.53', search: ['lab.example'] }]);
    res = await pushAndCount(mtuDns);
    assert.deepEqual(res.diffs, [], 'MTU and DNS: applied state');
    assert.equal(res.lost, 0);
    assert.match((await agent.readFile('/etc/resolv.conf'))!.toString(), /^nameserver 10\.77\.0\.53\nsearch lab\.example$/m);

    await h.virsh('detach-device', DOMAIN, nicXml, '--live');
    const goneBy = Date.now() + 60_000;
    while (MAC3 in (await namesNow())) {
      assert.ok(Date.now() < goneBy, 'the hot-removed NIC never left the guest');
      await new Promise((r) => setTimeout(r, 500));
    }
    res = await pushAndCount(life({ links: [], networks: [] }));
    assert.deepEqual(res.diffs, [], 'hot-remove: applied state');
    assert.equal(res.lost, 0);

    // a bond of both NICs with a VLAN on it, live (the guest kernel has bonding and 8021q)
    const bondDoc = (vlans: { id: number; addr: string }[], extra: unknown[] = []) => ({
      links: [
        { id: 'p0', type: 'phy', ethernet_mac_address: MAC },
        { id: 'p1', type: 'phy', ethernet_mac_address: MAC2 },
        { id: 'b', type: 'bond', bond_links: ['p0', 'p1'], bond_mode: '1', bond_miimon: 100 },
        ...vlans.map((v) => ({ id: `v${v.id}`, type: 'vlan', vlan_link: 'b', vlan_id: v.id })),
      ],
      networks: [
        { id: 'n0', link: 'b', type: 'ipv4', ip_address: '192.0.2.10', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.0.2.1' }] },
        ...vlans.map((v) => ({ id: `n${v.id}`, link: `v${v.id}`, type: 'ipv4', ip_address: v.addr, netmask: '255.255.255.0' })),
        ...extra,
      ],
      services: [],
    });
    const docFile = join(work, 'bond.json');
    writeFileSync(docFile, JSON.stringify(bondDoc([{ id: 10, addr: '10.10.0.5' }])));
    await ok('guest', 'push', DOMAIN, '--connect', h.uri, '--input', docFile);
    const v4 = async () =>
      Object.fromEntries(
        (await agent.interfaces()).filter((i) => i.name !== 'lo').map((i) => [i.name, (i['ip-addresses'] ?? []).filter((a) => a['ip-address-type'] === 'ipv4').map((a) => `${a['ip-address']}/${a.prefix}`)]),
      );
    assert.deepEqual(await v4(), { eth0: [], eth1: [], bond0: ['192.0.2.10/24'], 'bond0.10': ['10.10.0.5/24'] });
    const bondInfo = (await agent.exec('cat', ['/proc/net/bonding/bond0'])).stdout;
    assert.match(bondInfo, /Bonding Mode: fault-tolerance \(active-backup\)/);
    assert.match(bondInfo, /MII Polling Interval \(ms\): 100/);
    assert.match(bondInfo, /Slave Interface: eth0[\s\S]*Slave Interface: eth1/);

    // a push that creates VLAN 20 and then fails (its MTU 9000 exceeds the bond's 1500, which
    // the kernel refuses): VLAN 20 is deleted again and everything else is as before
    const failing = bondDoc([{ id: 10, addr: '10.10.0.6' }, { id: 20, addr: '10.20.0.5' }]);
    (failing.links.find((l) => l.id === 'v20') as Record<string, unknown>).mtu = 9000;
    writeFileSync(docFile, JSON.stringify(failing));
    const bad = await cli(db, 'guest', 'push', DOMAIN, '--connect', h.uri, '--input', docFile);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /guest push failed: the apply script failed: step failed: ip link set dev bond\d\.20 mtu 9000: .*rolled back to the previous configuration/, JSON.stringify(JSON.parse((await agent.exec('ip', ['-j', 'link', 'show'])).stdout).map((l: { ifname: string; ifindex: number; address: string; permaddr?: string }) => [l.ifindex, l.ifname, l.address, l.permaddr])));
    assert.match(bad.stderr, /guest: wrote 1 eni file/);
    assert.deepEqual(await v4(), { eth0: [], eth1: [], bond0: ['192.0.2.10/24'], 'bond0.10': ['10.10.0.5/24'] });

    // two pushes at once through libvirt (which serialises single commands, not whole pushes):
    // ipvisor's per-VM lock keeps them from interleaving, so both succeed
    const docA = join(work, 'a.json');
    const docB = join(work, 'b.json');
    writeFileSync(docA, JSON.stringify(bondDoc([{ id: 10, addr: '10.10.0.7' }])));
    writeFileSync(docB, JSON.stringify(bondDoc([{ id: 10, addr: '10.10.0.8' }])));
    const [ra, rb] = await Promise.all([cli(db, 'guest', 'push', DOMAIN, '--connect', h.uri, '--input', docA), cli(db, 'guest', 'push', DOMAIN, '--connect', h.uri, '--input', docB)]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal((await v4())['bond0.10']!.length, 1);
  } finally {
    await h?.teardown();
    cleanup();
    rmSync(work, { recursive: true, force: true });
  }
});
