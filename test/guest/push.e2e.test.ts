// End to end: `ipvisor guest push` against the real qemu-ga in a stand-in guest (own network and
// mount namespaces). The push changes the namespace's addresses, routes and MTU without a reboot;
// a failing apply rolls back; blocked RPCs give a clear message.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { IpvisorError } from '../../src/core/model/errors.js';
import { pushNetworkData } from '../../src/agent/guest/push.js';
import { GuestAgent, QgaSocket } from '../../src/agent/guest/qga.js';
import { run, standinUnavailable, startStandinGuest, type StandinGuest } from './standin.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const MAC = 'fa:16:3e:12:34:56';
const skip = standinUnavailable();

function doc(v4: string, gw: string, mtu: number, extra: Record<string, unknown>[] = []): unknown {
  return {
    links: [{ id: 'tap0', type: 'ovs', ethernet_mac_address: MAC.toUpperCase(), mtu }],
    networks: [
      {
        id: 'network0',
        link: 'tap0',
        type: 'ipv4',
        ip_address: v4,
        netmask: '255.255.255.0',
        routes: [
          { network: '0.0.0.0', netmask: '0.0.0.0', gateway: gw },
          { network: '10.99.0.0', netmask: '255.255.0.0', gateway: gw.replace(/\.\d+$/, '.254') },
        ],
        services: [{ type: 'dns', address: '192.0.2.53' }],
      },
      ...extra,
    ],
    services: [],
  };
}

interface Addr {
  ifname: string;
  mtu: number;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

describe('guest push through the real qemu-ga', { skip: skip ?? false }, () => {
  let g: StandinGuest;
  let agent: GuestAgent;
  const state = async (): Promise<{ addrs: string[]; mtu: number; routes: string[] }> => {
    const [a] = JSON.parse(await g.ip('-j', 'addr', 'show', 'dev', 'eth0')) as Addr[];
    const routes = (JSON.parse(await g.ip('-j', 'route', 'show', 'dev', 'eth0')) as { dst: string; gateway?: string }[]).filter((r) => r.gateway).map((r) => `${r.dst} via ${r.gateway}`);
    return { addrs: a!.addr_info.filter((i) => i.scope === 'global').map((i) => `${i.local}/${i.prefixlen}`).sort(), mtu: a!.mtu, routes: routes.sort() };
  };

  before(async () => {
    g = await startStandinGuest(MAC);
    await g.ip('addr', 'add', '198.51.100.10/24', 'dev', 'eth0');
    await g.ip('route', 'add', 'default', 'via', '198.51.100.1');
    agent = new GuestAgent(new QgaSocket(g.socket));
  });
  after(async () => {
    await agent?.close();
    await g?.stop();
  });

  test('dry run: shows the plan, changes nothing', async () => {
    const r = await pushNetworkData(agent, doc('203.0.113.20', '203.0.113.1', 1400), { dryRun: true });
    assert.equal(r.applied, false);
    assert.equal(r.plan.format, 'netplan'); // detected: /etc/netplan exists and netplan is installed
    assert.match(r.plan.applyScript, /ip -4 addr replace 203\.0\.113\.20\/24 dev eth0/);
    assert.match(r.plan.applyScript, /ip -4 addr del 198\.51\.100\.10\/24 dev eth0/);
    assert.deepEqual(await state(), { addrs: ['198.51.100.10/24'], mtu: 1500, routes: ['default via 198.51.100.1'] });
  });

  test('a netplan guest whose own files pick NetworkManager gets renderer: NetworkManager', async () => {
    await agent.writeFile('/etc/netplan/01-network-manager-all.yaml', 'network:\n  version: 2\n  renderer: NetworkManager\n');
    try {
      const r = await pushNetworkData(agent, doc('203.0.113.20', '203.0.113.1', 1400), { dryRun: true });
      assert.equal(r.plan.format, 'netplan');
      assert.match(r.plan.files['/etc/netplan/50-ipvisor.yaml']!, /^network:\n {2}version: 2\n {2}renderer: NetworkManager\n/m);
      assert.deepEqual(r.warnings, []);
    } finally {
      await agent.exec('rm', ['-f', '/etc/netplan/01-network-manager-all.yaml']);
    }
  });

  test('a link whose MAC the guest does not have is refused before anything changes', async () => {
    const d = doc('203.0.113.20', '203.0.113.1', 1400) as { links: { ethernet_mac_address: string }[] };
    d.links[0]!.ethernet_mac_address = '02:00:00:00:99:99';
    await assert.rejects(pushNetworkData(agent, d, { format: 'eni' }), /guest has no NIC with MAC 02:00:00:00:99:99 \(link 'tap0'\); pass --nic NAME=MAC/);
    assert.deepEqual((await state()).addrs, ['198.51.100.10/24']);
  });

  test('push changes addresses, routes and MTU live and persists the config', async () => {
    // another ifupdown file that also configures eth0: the push warns about it
    await agent.writeFile('/etc/network/interfaces.d/60-old', 'auto eth0\niface eth0 inet dhcp\n');
    const lines: string[] = [];
    const r = await pushNetworkData(agent, doc('203.0.113.20', '203.0.113.1', 1400), { format: 'eni', log: (l) => lines.push(l) });
    assert.equal(r.applied, true);
    assert.deepEqual(r.warnings, ["/etc/network/interfaces.d/60-old also configures eth0; at the next boot it adds to (or fights) ipvisor's eni file"]);
    assert.deepEqual(await state(), { addrs: ['203.0.113.20/24'], mtu: 1400, routes: ['10.99.0.0/16 via 203.0.113.254', 'default via 203.0.113.1'] });
    const eni = (await agent.readFile('/etc/network/interfaces.d/50-ipvisor'))?.toString();
    assert.match(eni ?? '', /iface eth0 inet static\n {4}mtu 1400\n {4}address 203\.0\.113\.20\/24/);
    assert.equal(existsSync('/etc/network/interfaces.d/50-ipvisor'), false, 'the stand-in guest must not write to the host /etc');
    const modes = (await agent.exec('stat', ['-c', '%a %n', '/etc/network/interfaces.d/50-ipvisor', '/run/ipvisor'])).stdout;
    assert.equal(modes, '644 /etc/network/interfaces.d/50-ipvisor\n700 /run/ipvisor\n', 'no world-writable config (the agent creates files 0666)');
    assert.ok(lines.some((l) => /confirmed/.test(l)), lines.join('\n'));
  });

  test('a failing apply rolls back addresses, routes and MTU and the persisted file', async () => {
    const beforeState = await state();
    const eniBefore = (await agent.readFile('/etc/network/interfaces.d/50-ipvisor'))?.toString();
    // IPv6 switched off on eth0: the apply script fails after it already changed the IPv4 side
    await run('ip', ['netns', 'exec', g.ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=1']);
    const lines: string[] = [];
    const v6 = { id: 'network1', link: 'tap0', type: 'ipv6', ip_address: '2001:db8:77::30', netmask: 'ffff:ffff:ffff:ffff::', routes: [] };
    await assert.rejects(
      pushNetworkData(agent, doc('203.0.113.30', '203.0.113.1', 1300, [v6]), { format: 'eni', log: (l) => lines.push(l) }),
      (e: unknown) => e instanceof IpvisorError && e.code === 'DRIVER' && /apply script failed.*rolled back/.test(e.message),
    );
    assert.ok(lines.some((l) => /rollback finished/.test(l)), lines.join('\n'));
    assert.deepEqual(await state(), beforeState);
    assert.equal((await agent.readFile('/etc/network/interfaces.d/50-ipvisor'))?.toString(), eniBefore);
  });

  test('a host that dies before confirming: the guard in the guest rolls back by itself', async () => {
    await run('ip', ['netns', 'exec', g.ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.eth0.disable_ipv6=0']);
    const beforeState = await state();
    const eniBefore = (await agent.readFile('/etc/network/interfaces.d/50-ipvisor'))?.toString();
    await agent.close(); // qemu-ga serves one client at a time: hand the socket to the dying host
    const helper = new URL('./push-then-die.ts', import.meta.url).pathname;
    const child = await run(process.execPath, ['--import', 'tsx', helper, g.socket, JSON.stringify(doc('203.0.113.50', '203.0.113.1', 1280)), '2']).catch((e) => e);
    assert.equal(child.signal, 'SIGKILL', String(child.stdout));
    assert.match(String(child.stdout), /new configuration is up/);
    assert.deepEqual((await state()).addrs, ['203.0.113.50/24'], 'the new config was applied before the host died');
    // the guard waits 2 s for a confirmation that never comes, then rolls back
    const deadline = Date.now() + 10_000;
    while (JSON.stringify(await state()) !== JSON.stringify(beforeState) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await state(), beforeState);
    agent = new GuestAgent(new QgaSocket(g.socket));
    assert.equal((await agent.readFile('/etc/network/interfaces.d/50-ipvisor'))?.toString(), eniBefore);
  });

  test('partial JSON left by a previous client does not wedge the next one (0xFF resync)', async () => {
    await agent.close();
    const { createConnection } = await import('node:net');
    await new Promise<void>((resolve, reject) => {
      const s = createConnection(g.socket, () => s.end('{"execute":"guest-ping"', () => resolve()));
      s.on('error', reject);
    });
    // a naive client (no 0xFF sync) now gets no reply at all: the agent's parser is mid-object
    const naive = await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = createConnection(g.socket, () => s.write('{"execute":"guest-ping"}\n'));
      s.on('data', (d) => (got += d));
      s.on('error', reject);
      setTimeout(() => {
        s.destroy();
        resolve(got);
      }, 400);
    });
    assert.equal(naive, '');
    agent = new GuestAgent(new QgaSocket(g.socket));
    assert.deepEqual(await agent.ping(3000), {});
    assert.equal((await agent.osInfo())?.id, 'debian');
  });

  test('an agent that blocks file and exec RPCs gets a clear message, nothing changes', async () => {
    const socket = `${g.dir}/blocked.sock`;
    await g.startAgent(socket, ['-b', 'guest-exec,guest-exec-status,guest-file-open,guest-file-write']);
    const blocked = new GuestAgent(new QgaSocket(socket));
    try {
      const beforeState = await state();
      await assert.rejects(
        pushNetworkData(blocked, doc('203.0.113.40', '203.0.113.1', 1500), {}),
        (e: unknown) => e instanceof IpvisorError && /blocks guest-file-open, guest-file-write, guest-exec, guest-exec-status/.test(e.message),
      );
      assert.deepEqual(await state(), beforeState);
    } finally {
      await blocked.close();
    }
  });
});
