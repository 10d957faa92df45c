// The agent-placed watchers on an agent host, over the HTTP control plane (what `ipvisor agent` runs):
// an allocation made on the server reaches the running guest through the agent's guest push (the
// real qemu-ga stand-in); a hot-added NIC seen while the server is down is queued as a fact on disk,
// sent when the server is back, recorded on the server (audited as the agent) and enforced on the
// host (nft in the host's namespace); a domain fact about another host is 403, a malformed one 400,
// and neither changes anything.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { createGuestPushWatcher, GUEST_PUSH_DOC, type GuestPushRecord } from '../../src/agent/guest/watcher.js';
import { HttpControlPlane } from '../../src/agent/http-control-plane.js';
import { domainFact } from '../../src/agent/libvirt/watcher.js';
import { parseDomainXml } from '../../src/agent/libvirt/xml.js';
import { HostLocalState } from '../../src/agent/state.js';
import { AGENT_PROTOCOL } from '../../src/core/control-plane.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import type { DaemonWatcher } from '../../src/core/watcher.js';
import { agentRoutes } from '../../src/server/agent-http.js';
import { StoreControlPlane } from '../../src/server/control-plane.js';
import { startHttpServer } from '../../src/server/http.js';
import { cli } from '../support/cli.js';
import { netnsSkipReason, Topology, useHostEnv } from '../support/netns.js';
import { standinUnavailable, startStandinGuest, type StandinGuest } from '../guest/standin.js';
import { guardRootNamespace } from '../support/root-guard.js';

guardRootNamespace();

const skip = (await netnsSkipReason()) || standinUnavailable();
const HOST = 'hv1';
const VM_UUID = '6a1e0000-0000-4000-8000-0000000000a1';
const MAC0 = '52:54:00:71:00:01';
const MAC1 = '52:54:00:71:00:02';

describe('agent-placed watchers on an agent host (HTTP control plane)', { skip: skip || false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-agentwatch-'));
  const db = join(dir, 'server.db');
  const tokenFile = join(dir, 'token');
  const topo = new Topology();
  const logs: string[] = [];
  const ac = new AbortController();
  let restoreEnv: (() => void) | undefined;
  let guest: StandinGuest | undefined;
  let store: Store;
  let controlPlane: StoreControlPlane;
  let server: { url: string; close: () => Promise<void> } | undefined;
  let port = 0;
  let agent: Agent;
  let local: HostLocalState;
  let running: Promise<void> | undefined;
  const watchers: DaemonWatcher[] = [];
  let vifA = '';
  let vifB = '';

  const c = async (...args: string[]) => {
    const r = await cli(db, ...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const until = async (what: string, fn: () => Promise<boolean>, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > end) assert.fail(`${what} did not happen; agent log:\n${logs.slice(-40).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const guestAddrs = async (dev: string) => {
    const [a] = JSON.parse(await guest!.ip('-j', 'addr', 'show', 'dev', dev)) as any[];
    return a.addr_info.filter((i: any) => i.scope === 'global').map((i: any) => `${i.local}/${i.prefixlen}`).sort();
  };
  const elements = () => topo.inHost(['nft', 'list', 'set', 'bridge', 'ipvisor', 'vif_ip4'], { allowFail: true });
  const startServer = async () => {
    server = await startHttpServer({ store, listen: `127.0.0.1:${port}`, plugins: [{ plugin: agentRoutes as never, options: { controlPlane, version: AGENT_PROTOCOL } }] });
    port = Number(new URL(server.url).port);
  };
  const post = async (host: string, body: unknown) =>
    (await fetch(`${server!.url}/agent/v1/hosts/${host}/facts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(await import('node:fs')).readFileSync(tokenFile, 'utf8').trim()}`, 'x-ipvisor-protocol': AGENT_PROTOCOL, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })).status;
  const domainXml = (ifaces: Array<{ mac: string; dev: string }>) =>
    `<domain type='kvm' id='3'><name>web1</name><uuid>${VM_UUID}</uuid><devices>${ifaces.map((i) => `<interface type='bridge'><mac address='${i.mac}'/><source bridge='${topo.bridge}'/><target dev='${i.dev}'/></interface>`).join('')}</devices></domain>`;

  before(async () => {
    await topo.create();
    vifA = (await topo.addVm('a', MAC0)).vif;
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: join(dir, 'run') });
    guest = await startStandinGuest(MAC0);
    await c('init');
    await c('network', 'create', 'lan', '--bridge', topo.bridge, '--subnet', '10.71.0.0/24,gateway=10.71.0.1', '--default-locking', 'locked');
    await c('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '10.71.0.0/24');
    await c('host', 'add', HOST, '--token-file', tokenFile);
    await c('host', 'add', 'hv2', '--token-file', join(dir, 'token2'));
    await c('vm', 'add', 'web1', '--host', HOST, '--uuid', VM_UUID);
    await c('vif', 'add', 'web1', '--network', 'lan', '--mac', MAC0);
    await c('vif', 'bind', 'web1:0', '--ifname', vifA, '--host', HOST);
    await c('guest', 'auto-push', 'on', '--vm', 'web1', '--socket', guest.socket);
    store = await openStore(db);
    controlPlane = new StoreControlPlane(store, { requireRegistration: true });
    await startServer();
    local = new HostLocalState(join(dir, 'state'));
    agent = new Agent({ host: HOST, controlPlane: new HttpControlPlane({ servers: [server!.url], tokenFile }), local, log: (m) => logs.push(m), intervalMs: 1000, retryMs: 200, waitMs: 10_000 });
    running = agent.run(ac.signal);
    // a long interval: a push within it is the new desired copy's doing, not a periodic scan
    const push = createGuestPushWatcher({ transport: 'qga', intervalMs: 600_000, retryMs: 600_000, guardSeconds: 30 });
    watchers.push(push);
    await push.start({ host: agent.hostPort(), actor: `agent:${HOST}`, requestReconcile: (r) => agent.requestReconcile(r), log: (m) => logs.push(`guest: ${m}`), signal: ac.signal });
  });

  after(async () => {
    ac.abort();
    for (const w of watchers) await w.stop().catch(() => undefined);
    await running?.catch(() => undefined);
    await server?.close().catch(() => undefined);
    controlPlane?.close();
    await store?.close().catch(() => undefined);
    local?.close();
    await guest?.stop();
    restoreEnv?.();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("an allocation on the server reaches the running guest through the agent's push, and is enforced", async () => {
    await agent.ready;
    await c('ip', 'allocate', '--vif', 'web1:0', '--address', '10.71.0.5');
    await until('the guest configured with the new address', async () => (await guestAddrs('eth0')).includes('10.71.0.5/24'));
    await until('the address enforced on the host', async () => /10\.71\.0\.5(?![0-9])/.test(await elements()));
    // the push record is the agent's (local state) and reached the server as a fact (guest status)
    assert.equal(local.get<GuestPushRecord>(GUEST_PUSH_DOC, VM_UUID)?.ok, true);
    await until('the push record on the server', async () => (await store.getDoc<GuestPushRecord & { host: string }>(GUEST_PUSH_DOC, VM_UUID))?.value.host === HOST);
    const shown = await c('guest', 'auto-push', 'on', '--vm', 'web1', '--json');
    assert.equal((shown.json as { lastPush?: { ok: boolean } }).lastPush?.ok, true, '`guest auto-push` on the server shows the last push');
  });

  test('a hot-added NIC seen during an outage: queued on disk, sent on reconnect, recorded on the server, enforced', async () => {
    await server!.close();
    server = undefined;
    await until('the agent to notice the outage', async () => !agent.state.connected);
    vifB = (await topo.addVm('b', MAC1)).vif;
    await guest!.addNic('ens7', MAC1);
    // what the libvirt watcher reports on "event 'device-added' for domain 'web1'" (its live XML)
    const dom = parseDomainXml(domainXml([{ mac: MAC0, dev: vifA }, { mac: MAC1, dev: vifB }]));
    agent.hostPort().reportFacts([domainFact(HOST, dom, 'running')]);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(agent.state.queuedFacts >= 1, 'the fact waits in the queue on disk');
    assert.equal((await store.listVifs(VM_UUID)).length, 1, 'nothing reached the server');

    await startServer();
    await until('the hot-added NIC recorded on the server', async () => (await store.listVifs(VM_UUID)).some((v) => v.mac === MAC1 && v.ifname === vifB));
    await until('the queue drained', async () => agent.state.queuedFacts === 0);
    const events = await store.listEvents();
    assert.ok(events.some((e) => e.actor === `agent:${HOST}` && e.objectKind === 'vif' && e.action === 'create'), 'recorded through the service layer, audited as the agent');
    // enforced: an address for the new NIC, allocated on the server, is in the host's kernel and in the guest
    await c('ip', 'allocate', '--vif', 'web1:1', '--address', '10.71.0.6');
    await until('the new NIC enforced on the host', async () => new RegExp(`"${vifB}" \\. 10\\.71\\.0\\.6(?![0-9])`).test(await elements()));
    await until('the hot-added NIC configured in the guest', async () => (await guestAddrs('ens7')).includes('10.71.0.6/24'));
    assert.deepEqual(await guestAddrs('eth0'), ['10.71.0.5/24']);
  });

  test("a domain fact about another host is 403, a malformed one 400; nothing changes", async () => {
    const before = JSON.stringify(await store.listVms());
    const other = domainFact('hv2', parseDomainXml(domainXml([{ mac: '52:54:00:71:00:09', dev: 'vnet9' }]).replace(VM_UUID, '6a1e0000-0000-4000-8000-0000000000b2')), 'running');
    assert.equal(await post(HOST, { facts: [other] }), 403, "a fact naming another host, sent with this host's token");
    assert.equal(await post('hv2', { facts: [other] }), 403, "this host's token for another host's path");
    const bad = { ...domainFact(HOST, parseDomainXml(domainXml([])), 'running'), state: 'paused' };
    assert.equal(await post(HOST, { facts: [bad] }), 400);
    assert.equal(await post(HOST, { facts: [{ ...bad, state: 'running', domain: { uuid: VM_UUID, name: 'web1', interfaces: 'all' } }] }), 400);
    assert.equal(JSON.stringify(await store.listVms()), before);
  });

  test("a late 'stopped' from a migration's source changes nothing on the target", async () => {
    const MIG = '6a1e0000-0000-4000-8000-0000000000c3';
    await c('vm', 'add', 'mig', '--host', 'hv2', '--uuid', MIG);
    await c('vif', 'add', 'mig', '--network', 'lan', '--mac', '52:54:00:71:00:0c');
    await c('vif', 'bind', 'mig:0', '--ifname', 'vnet7', '--host', 'hv2');
    const stopped = domainFact(HOST, parseDomainXml(`<domain type='kvm'><name>mig</name><uuid>${MIG}</uuid><devices><interface type='bridge'><mac address='52:54:00:71:00:0c'/><source bridge='${topo.bridge}'/></interface></devices></domain>`), 'stopped');
    assert.equal(await post(HOST, { facts: [stopped] }), 200);
    const vm = await store.getVm(MIG);
    assert.equal(vm?.host, 'hv2');
    assert.equal((await store.listVifs(MIG))[0].ifname, 'vnet7', 'still bound on the target');
  });
});

describe('serve runs the same agent-placed watchers against its in-process agent', { skip: skip || false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-servewatch-'));
  const db = join(dir, 'ipvisor.db');
  const topo = new Topology();
  const logs: string[] = [];
  const ac = new AbortController();
  let restoreEnv: (() => void) | undefined;
  let guest: StandinGuest | undefined;
  let store: Store | undefined;
  let serving: Promise<void> | undefined;
  const c = async (...args: string[]) => {
    const r = await cli(db, ...args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const until = async (what: string, fn: () => Promise<boolean>, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!(await fn().catch(() => false))) {
      if (Date.now() > end) assert.fail(`${what} did not happen; serve log:\n${logs.slice(-40).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    await topo.create();
    const vif = (await topo.addVm('a', MAC0)).vif;
    restoreEnv = useHostEnv({ IPVISOR_NETNS: topo.host, IPVISOR_RUN_DIR: join(dir, 'run') });
    guest = await startStandinGuest(MAC0);
    const { thisHost } = await import('../../src/core/host-identity.js');
    await c('init');
    await c('network', 'create', 'lan', '--bridge', topo.bridge, '--subnet', '10.72.0.0/24,gateway=10.72.0.1', '--default-locking', 'locked');
    await c('pool', 'create', 'lan4', '--network', 'lan', '--cidr', '10.72.0.0/24');
    await c('vm', 'add', 'web1', '--host', thisHost(), '--uuid', VM_UUID);
    await c('vif', 'add', 'web1', '--network', 'lan', '--mac', MAC0);
    await c('vif', 'bind', 'web1:0', '--ifname', vif);
    await c('guest', 'auto-push', 'on', '--vm', 'web1', '--socket', guest.socket);
    store = await openStore(db);
    const { serve } = await import('../../src/daemon/serve.js');
    // the registry's watchers of both placements, as `ipvisor serve` starts them
    serving = serve({ store, log: (m) => logs.push(m), signal: ac.signal, intervalMs: 60_000, stateDir: join(dir, 'state') });
    await until('serve running its watchers', async () => logs.some((l) => /^serving: .*watchers: .*guest-auto-push/.test(l)));
  });

  after(async () => {
    ac.abort();
    await serving?.catch(() => undefined);
    await store?.close().catch(() => undefined);
    await guest?.stop();
    restoreEnv?.();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an allocation by the CLI reaches the guest through the in-process agent; the record is in the store', async () => {
    await c('ip', 'allocate', '--vif', 'web1:0', '--address', '10.72.0.5');
    await until('the guest configured', async () => {
      const [a] = JSON.parse(await guest!.ip('-j', 'addr', 'show', 'dev', 'eth0')) as any[];
      return a.addr_info.some((i: any) => i.local === '10.72.0.5');
    });
    await until('the push record in the store (a fact through the in-process control plane)', async () => (await store!.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, VM_UUID))?.value.ok === true);
    assert.ok(!logs.some((l) => /guest-auto-push: not started|libvirt-events: not started|nft-monitor: not started/.test(l)), logs.join('\n'));
  });
});
