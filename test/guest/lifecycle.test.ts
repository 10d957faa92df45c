// Guest network lifecycle against the stand-in guest (the real qemu-ga in its own namespaces):
// a NIC hot-added, one hot-removed (the one with the default route), a DHCPv6 document with
// routes (Nova writes those), MTU and DNS changed — each push followed by the applied-state
// comparison with the document, while a ping across a NIC the push does not change counts lost
// replies (must be zero) and `ip monitor` shows that NIC saw no netlink change. Then naming by MAC:
// the middle NIC of three removed and the guest rebuilt from scratch with shifted ethN names.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { parseNetworkData } from '../../src/core/guest/parse.js';
import { guestNicNames, pushNetworkData, type PushOptions, type PushResult } from '../../src/agent/guest/push.js';
import { GuestAgent, QgaSocket } from '../../src/agent/guest/qga.js';
import { compareApplied, kernelState } from './applied.js';
import { run, standinUnavailable, startStandinGuest, type StandinGuest } from './standin.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = standinUnavailable();
const A = '52:54:00:7a:00:01';
const B = '52:54:00:7a:00:02';
const C = '52:54:00:7a:00:03';

const nic = (id: string, mac: string, mtu?: number) => ({ id, type: 'phy', ethernet_mac_address: mac, ...(mtu ? { mtu } : {}) });
const route = (network: string, netmask: string, gateway: string) => ({ network, netmask, gateway });
const v4 = (id: string, link: string, ip: string, routes: unknown[] = [], extra: Record<string, unknown> = {}) => ({ id, link, type: 'ipv4', ip_address: ip, netmask: '255.255.255.0', routes, ...extra });

/** Pings `target` from the guest's host-side namespace in complete batches until `work` settles (plus one batch); counts lost replies. */
async function pingDuring<T>(g: StandinGuest, target: string, work: Promise<T>): Promise<{ value: T; sent: number; lost: number }> {
  let done = false;
  const settled = work.finally(() => (done = true));
  let sent = 0;
  let received = 0;
  let extra = 1;
  while (!done || extra-- > 0) {
    const r = await run('ip', ['netns', 'exec', g.hostNs, 'ping', '-n', '-q', '-c', '10', '-i', '0.05', '-W', '1', target]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    assert.ok(m, `ping printed no summary: ${r.stdout}`);
    sent += Number(m[1]);
    received += Number(m[2]);
  }
  return { value: await settled, sent, lost: sent - received };
}

/** Records the guest's netlink changes (links, addresses, routes) while `work` runs. */
async function monitorDuring<T>(g: StandinGuest, work: () => Promise<T>): Promise<{ value: T; events: string[] }> {
  const mon = spawn('ip', ['-n', g.ns, '-o', 'monitor', 'link', 'address', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  mon.stdout!.on('data', (d) => (out += d));
  await new Promise((r) => setTimeout(r, 200)); // subscribed before the push starts
  try {
    const value = await work();
    await new Promise((r) => setTimeout(r, 200));
    return { value, events: out.split('\n').filter(Boolean) };
  } finally {
    mon.kill('SIGTERM');
    await new Promise((r) => (mon.exitCode !== null ? r(null) : mon.once('exit', r)));
  }
}

const touches = (events: string[], ifname: string) => events.filter((e) => new RegExp(`(^\\d+: ${ifname}[:@ ]|dev ${ifname}( |$))`).test(e));

describe('guest network lifecycle on the stand-in guest', { skip: skip ?? false }, () => {
  let g: StandinGuest;
  let agent: GuestAgent;
  /** MAC -> name inside the guest (what the agent reports; used only to name the expectation). */
  const names: Record<string, string> = { [A]: 'eth0', [B]: 'eth1', [C]: 'ens9' };
  const push = (doc: unknown, opts: PushOptions = {}) => pushNetworkData(agent, doc, { guardSeconds: 60, verifyTimeoutMs: 10_000, ...opts });
  const applied = async (doc: unknown): Promise<string[]> => {
    const state = parseNetworkData(doc, { nicNames: names });
    const resolv = (await agent.readFile('/etc/resolv.conf'))?.toString() ?? '';
    return compareApplied(state, { ...(await kernelState(g.ns)), resolv }, { resolver: true });
  };

  // eth0 (A) and eth1 (B) at first; eth1's peer answers pings from the host side
  const base = {
    links: [nic('n-a', A, 1500), nic('n-b', B, 1500)],
    networks: [
      v4('net-a', 'n-a', '10.71.0.2', [route('0.0.0.0', '0.0.0.0', '10.71.0.1')]),
      v4('net-b', 'n-b', '10.71.1.2', [route('10.99.0.0', '255.255.0.0', '10.71.1.1')]),
    ],
    services: [{ type: 'dns', address: '10.71.0.53' }],
  };

  before(async () => {
    g = await startStandinGuest(A);
    await g.addNic('eth1', B, '10.71.1.1/24');
    agent = new GuestAgent(new QgaSocket(g.socket));
    const r = await push(base, { format: 'networkd' });
    assert.equal(r.applied, true);
    assert.deepEqual(await applied(base), []);
  });
  after(async () => {
    await agent?.close();
    await g?.stop();
  });

  const withC = {
    ...base,
    links: [...base.links, nic('n-c', C)],
    networks: [...base.networks, v4('net-c', 'n-c', '10.71.2.2')],
  };

  test('hot-add: the new NIC comes up configured, found by its MAC; the other NICs see no change and lose no packet', async () => {
    await g.addNic('ens9', C, '10.71.2.1/24'); // not ethN: the guest's name, matched by MAC
    const { value, events } = await monitorDuring(g, () => pingDuring(g, '10.71.1.2', push(withC, { format: 'networkd' })));
    assert.equal(value.value.applied, true);
    assert.equal(value.lost, 0, `lost ${value.lost} of ${value.sent} replies across eth1 during the push`);
    assert.deepEqual(await applied(withC), []);
    assert.deepEqual(touches(events, 'eth1'), [], 'eth1 was touched');
    assert.deepEqual(touches(events, 'eth0'), [], 'eth0 was touched');
    assert.ok(touches(events, 'ens9').length > 0, 'the new NIC was configured');
    await run('ip', ['netns', 'exec', g.hostNs, 'ping', '-n', '-q', '-c', '2', '-W', '2', '10.71.2.2']); // and passes traffic
    assert.ok(value.value.plan.files['/etc/systemd/network/50-ipvisor-ens9.network']?.includes(`PermanentMACAddress=${C}`));
  });

  // eth0, which carries the default route, goes; the default route moves to eth1
  const withoutA = {
    links: [nic('n-b', B, 1500), nic('n-c', C)],
    networks: [
      v4('net-b', 'n-b', '10.71.1.2', [route('0.0.0.0', '0.0.0.0', '10.71.1.1'), route('10.99.0.0', '255.255.0.0', '10.71.1.1')]),
      v4('net-c', 'n-c', '10.71.2.2'),
    ],
    services: [{ type: 'dns', address: '10.71.0.53' }],
  };

  test('hot-remove: the removed NIC\'s own files go, the default route moves, no restart: the other NICs lose no packet', async () => {
    await g.removeNic('eth0'); // the hypervisor unplugs it; the kernel device (and its routes) go
    const { value, events } = await monitorDuring(g, () => pingDuring(g, '10.71.2.2', pingDuring(g, '10.71.1.2', push(withoutA, { format: 'networkd' }))));
    const inner = value.value;
    assert.equal(inner.value.applied, true);
    assert.equal(inner.lost, 0, `lost ${inner.lost} of ${inner.sent} replies across eth1`);
    assert.equal(value.lost, 0, `lost ${value.lost} of ${value.sent} replies across ens9`);
    assert.deepEqual((inner.value.plan.removed ?? []).sort(), ['/etc/systemd/network/10-ipvisor-eth0.link', '/etc/systemd/network/50-ipvisor-eth0.network']);
    const ls = (await agent.exec('ls', ['/etc/systemd/network'])).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(ls, ['10-ipvisor-ens9.link', '10-ipvisor-eth1.link', '50-ipvisor-ens9.network', '50-ipvisor-eth1.network']);
    assert.deepEqual(await applied(withoutA), []);
    const defaults = JSON.parse(await g.ip('-j', '-4', 'route', 'show', 'default')) as { gateway: string; dev: string }[];
    assert.deepEqual(defaults.map((r) => `${r.gateway} ${r.dev}`), ['10.71.1.1 eth1']);
    assert.deepEqual(touches(events, 'ens9'), [], 'ens9 was touched');
  });

  // ens9 gets a DHCPv6 network whose route goes through the router: reachable only once DHCPv6/RA ran
  const dhcpv6 = {
    ...withoutA,
    networks: [
      ...withoutA.networks,
      { id: 'net-c6', link: 'n-c', type: 'ipv6_dhcpv6-stateful', ip_address: '2001:db8:71::5', netmask: 'ffff:ffff:ffff:ffff::', routes: [route('::', '::', '2001:db8:71::1'), route('2001:db8:99::', 'ffff:ffff:ffff::', '2001:db8:71::1')] },
    ],
  };

  test('a DHCPv6 document with routes (no lease yet) applies completely; eth1 loses no packet', async () => {
    const { value, events } = await monitorDuring(g, () => pingDuring(g, '10.71.1.2', push(dhcpv6, { format: 'networkd' })));
    assert.equal(value.value.applied, true);
    assert.equal(value.lost, 0);
    assert.deepEqual(await applied(dhcpv6), []);
    assert.match(value.value.plan.applyScript, /route replace 2001:db8:99::\/48 via 2001:db8:71::1 dev ens9 onlink/);
    assert.equal((await agent.exec('cat', ['/proc/sys/net/ipv6/conf/ens9/accept_ra'])).stdout.trim(), '2');
    assert.deepEqual(touches(events, 'eth1'), [], 'eth1 was touched');
  });

  const mtuDns = {
    ...dhcpv6,
    links: [nic('n-b', B, 1500), nic('n-c', C, 1400)],
    services: [{ type: 'dns', address: '10.71.2.53' }, { type: 'dns', address: '2001:db8:71::53' }],
    networks: dhcpv6.networks.map((n) => (n.id === 'net-c' ? { ...n, dns_search: ['lab.example'] } : n)),
  };

  test('MTU and DNS are applied live: the guest\'s resolver changes with the push; eth1 loses no packet', async () => {
    const { value, events } = await monitorDuring(g, () => pingDuring(g, '10.71.1.2', push(mtuDns, { format: 'networkd' })));
    assert.equal(value.value.applied, true);
    assert.equal(value.lost, 0);
    assert.deepEqual(await applied(mtuDns), []);
    const resolv = (await agent.readFile('/etc/resolv.conf'))!.toString();
    assert.deepEqual(resolv.split('\n').filter((l) => /^(nameserver|search)/.test(l)), ['nameserver 10.71.2.53', 'nameserver 2001:db8:71::53', 'search lab.example']);
    assert.deepEqual(touches(events, 'eth1'), [], 'eth1 was touched');
  });

  test('a failing step names itself, the rest still runs, and the whole result decides: rolled back, resolver included', async () => {
    const beforeState = await kernelState(g.ns);
    const resolvBefore = (await agent.readFile('/etc/resolv.conf'))!.toString();
    await run('ip', ['netns', 'exec', g.ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth1.disable_ipv6=1']);
    try {
      const bad = { ...mtuDns, services: [{ type: 'dns', address: '10.71.1.99' }], networks: [...mtuDns.networks, { id: 'net-b6', link: 'n-b', type: 'ipv6', ip_address: '2001:db8:72::2', netmask: '64', routes: [] }] };
      const lines: string[] = [];
      await assert.rejects(push(bad, { format: 'networkd', log: (l) => lines.push(l) }), /apply script failed: step failed: ip -6 addr replace 2001:db8:72::2\/64 dev eth1: .*rolled back/);
      // the steps after the failing one ran (the resolver is the last): they were applied, then rolled back
      assert.ok(lines.some((l) => /step failed: ip -6 addr replace/.test(l)), lines.join('\n'));
      assert.equal((await agent.readFile('/etc/resolv.conf'))!.toString(), resolvBefore);
      const now = await kernelState(g.ns);
      const addrs = (k: typeof now) => k.addrs.map((a) => `${a.ifname} ${a.addr_info.filter((i) => i.scope === 'global').map((i) => `${i.local}/${i.prefixlen}`).sort()}`);
      assert.deepEqual(addrs(now), addrs(beforeState));
    } finally {
      await run('ip', ['netns', 'exec', g.ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth1.disable_ipv6=0']);
    }
  });
});

describe('naming by MAC only: the middle NIC of three removed, the guest rebuilt from scratch', { skip: skip ?? false }, () => {
  const doc = (macs: string[]) => ({
    links: macs.map((m, n) => nic(`l${n}`, m)),
    networks: macs.map((m, n) => v4(`n${n}`, `l${n}`, `10.72.${Number(m.slice(-1))}.2`, n === 0 ? [route('0.0.0.0', '0.0.0.0', '10.72.1.1')] : [])),
  });
  const bootAndPush = async (nics: [string, string][], macs: string[]): Promise<{ r: PushResult; diffs: string[]; g: StandinGuest }> => {
    const g = await startStandinGuest(nics[0]![1]);
    for (const [name, mac] of nics.slice(1)) await g.addNic(name, mac);
    const agent = new GuestAgent(new QgaSocket(g.socket));
    try {
      const r = await pushNetworkData(agent, doc(macs), { format: 'networkd', guardSeconds: 60 });
      const state = parseNetworkData(doc(macs), { nicNames: Object.fromEntries(nics.map(([n, m]) => [m, n])) });
      return { r, diffs: compareApplied(state, await kernelState(g.ns)), g };
    } finally {
      await agent.close();
    }
  };

  test('the other two keep their configuration although the kernel names them eth0 and eth1 now', async () => {
    const first = await bootAndPush([['eth0', A], ['eth1', B], ['eth2', C]], [A, B, C]);
    try {
      assert.deepEqual(first.diffs, []);
    } finally {
      await first.g.stop();
    }
    // "reboot" without B: the kernel numbers the NICs again, so C is eth1 now
    const second = await bootAndPush([['eth0', A], ['eth1', C]], [A, C]);
    try {
      assert.deepEqual(second.diffs, []);
      const byMac = JSON.parse(await second.g.ip('-j', 'addr', 'show')) as { address: string; addr_info: { local: string; scope: string }[] }[];
      const of = (mac: string) => byMac.find((l) => l.address === mac)!.addr_info.filter((i) => i.scope === 'global').map((i) => i.local);
      assert.deepEqual(of(A), ['10.72.1.2']);
      assert.deepEqual(of(C), ['10.72.3.2'], "C's configuration followed its MAC to eth1");
      // the persisted files match by MAC as well, so the next boot agrees
      assert.match(second.r.plan.files['/etc/systemd/network/50-ipvisor-eth1.network']!, new RegExp(`PermanentMACAddress=${C}`));
    } finally {
      await second.g.stop();
    }
  });
});

test('guest NIC names by MAC: a bond (its first member\'s MAC) or a VLAN never names a NIC, whatever the ifindex order', () => {
  const links = [
    { ifname: 'lo', ifindex: 1, link_type: 'loopback', address: '00:00:00:00:00:00' },
    { ifname: 'bond0', ifindex: 2, link_type: 'ether', address: A }, // bonding loaded before virtio_net
    { ifname: 'eth0', ifindex: 3, link_type: 'ether', address: A, master: 'bond0' },
    { ifname: 'eth1', ifindex: 4, link_type: 'ether', address: A, permaddr: B, master: 'bond0' },
    { ifname: 'bond0.10', ifindex: 5, link_type: 'ether', address: A, link: 'bond0' },
  ];
  assert.deepEqual(guestNicNames([], links), { [A]: 'eth0', [B]: 'eth1' });
});
