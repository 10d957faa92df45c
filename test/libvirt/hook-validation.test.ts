// Facts from libvirt hooks pass the same validators as the CLI before anything is stored, and an
// invalid fact never widens access (issue 9). Real SQLite store, host apply recorded; the ruleset
// the host would get is compiled and rendered from what the hooks stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { createNetwork } from '../../src/core/service/networks.js';
import { runLibvirtHook, type ApplyScope, type HookDeps } from '../../src/agent/libvirt/hook.js';
import { DOC_PORT, DOC_TAP } from '../../src/core/service/libvirt-facts.js';
import { DOC_QUARANTINE, loadSnapshot, quarantineKey } from '../../src/core/model/snapshot.js';
import { thisHost } from '../../src/core/host-identity.js';
import { hostSnapshot, desiredDigest } from '../../src/core/compile/host-desired.js';
import { compileHostPlan } from '../../src/core/compile/host-plan.js';
import { renderTable } from '../../src/core/compile/nft-ruleset.js';

const FIX = new URL('./fixtures/', import.meta.url).pathname;
const DOM_UUID = '3aaa57e8-1e22-4bff-9586-6a05259a2f80';
const MAC = '52:54:00:12:34:56';
const QKEY = () => quarantineKey(thisHost(), 'vnet2');
const started = (): string =>
  readFileSync(join(FIX, 'qemu-lvdom1-started-begin.xml'), 'utf8')
    .replaceAll('8c2a3b9e-0000-4000-8000-00000000d001', DOM_UUID)
    .replace(/portid='[0-9a-f-]+'/g, "portid='719654f5-613c-4b78-9995-53b7660e6ee5'");
const stopped = (): string => readFileSync(join(FIX, 'qemu-lvdom1-stopped-end.xml'), 'utf8').replaceAll('8c2a3b9e-0000-4000-8000-00000000d001', DOM_UUID);
/** What the probe sent: a MAC attribute carrying nft syntax (a foreign table with an input-drop chain). */
const HOSTILE_MAC = `52:54:00:12:34:56 } } table inet evil { chain c { type filter hook input priority 0; policy drop; } } table bridge x { set s { type ifname . ether_addr; elements = { "vnet2" . 52:54:00:12:34:56`;

interface Harness {
  store: Store;
  deps: HookDeps;
  applied: ApplyScope[];
  logs: string[];
  netUuid: string;
  cleanup(): Promise<void>;
}

async function harness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'ipv-lvval-'));
  const store = await openStore(join(dir, 'db.sqlite'), { create: true });
  const net = await createNetwork(store, { name: 'lvnat', driver: 'libvirt', mode: 'nat', bridge: 'virbrT0', subnets: ['192.168.100.0/24,gateway=192.168.100.1'], defaultLocking: 'locked' }, 'test');
  const applied: ApplyScope[] = [];
  const logs: string[] = [];
  const deps: HookDeps = {
    openStore: async () => Object.assign(Object.create(store) as Store, { close: async () => undefined }),
    apply: async (_s, scope) => {
      applied.push(scope);
    },
    observeHost: async () => [],
    log: (l) => logs.push(l),
  };
  return { store, deps, applied, logs, netUuid: net.uuid, cleanup: async () => { await store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

/** The bridge table this host would get from what is stored now. */
async function bridgeRuleset(store: Store): Promise<{ text: string; disabled: string[]; macs: string[]; warnings: string[] }> {
  // through the per-host desired state, as the control plane hands it to this host's agent
  const plan = compileHostPlan(hostSnapshot(await loadSnapshot(store), thisHost()), { links: { virbrT0: { up: true, addresses: ['192.168.100.1/24'] } } });
  return { text: renderTable('bridge', plan.nft) + renderTable('inet', plan.nft), disabled: plan.nft.bridge.disabled_ifs, macs: plan.nft.bridge.vif_mac, warnings: plan.warnings };
}

test('probe: a domain whose <mac address> carries nft syntax never reaches the ruleset; its tap is disabled until its facts can be recorded', async () => {
  const h = await harness();
  try {
    const xml = started().replace(`<mac address='${MAC}'/>`, `<mac address='${HOSTILE_MAC}'/>`);
    assert.ok(xml.includes('table inet evil'));
    const digest = async (host: string) => desiredDigest({ host, snapshot: hostSnapshot(await loadSnapshot(h.store), host), settings: {} });
    const before = await digest(thisHost());
    const r = await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], xml, h.deps);
    // the agent of this host sees a new desired state; another host's does not get the tap
    assert.notEqual(await digest(thisHost()), before);
    assert.equal(hostSnapshot(await loadSnapshot(h.store), 'elsewhere').quarantinedTaps, undefined);
    assert.equal(r.code, 0);
    // nothing stored as given: no VIF, no tap doc carrying the value
    assert.equal((await h.store.listVifs()).length, 0);
    assert.equal((await h.store.listDocs(DOC_TAP)).length, 0);
    for (const kind of [DOC_TAP, DOC_PORT, DOC_QUARANTINE]) {
      for (const d of await h.store.listDocs(kind)) assert.ok(!JSON.stringify(d.value).includes('table inet evil') || kind === DOC_QUARANTINE, kind);
    }
    // the tap is enforced as disabled (skipping it would leave it unfiltered), with a log line saying why
    const q = await h.store.getDoc<{ ifname: string; reason: string }>(DOC_QUARANTINE, QKEY());
    assert.equal(q?.value.ifname, 'vnet2');
    assert.deepEqual(h.applied, [{ networkUuid: h.netUuid }]);
    const line = h.logs.find((l) => l.includes('enforced as disabled'));
    assert.ok(line, h.logs.join('\n'));
    assert.match(line!, /tap vnet2 on network lvnat is enforced as disabled until its facts can be recorded: its MAC cannot be recorded/);
    const rs = await bridgeRuleset(h.store);
    assert.deepEqual(rs.disabled, ['"vnet2"']);
    assert.ok(!rs.text.includes('evil'), 'the hostile value is not in the ruleset text');
    assert.ok(rs.warnings.some((w) => w.startsWith('tap vnet2 on network lvnat is disabled')));

    // the domain comes back with a valid MAC: the VIF takes the tap over, the quarantine ends
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], started(), h.deps)).code, 0);
    assert.equal(await h.store.getDoc(DOC_QUARANTINE, QKEY()), undefined);
    const [vif] = await h.store.listVifs(DOM_UUID);
    assert.equal(vif.mac, MAC);
    assert.equal(vif.ifname, 'vnet2');
    const rs2 = await bridgeRuleset(h.store);
    assert.deepEqual(rs2.disabled, []);
    assert.deepEqual(rs2.macs, [`"vnet2" . ${MAC}`]);
  } finally {
    await h.cleanup();
  }
});

test('a quarantined tap is let go when its domain stops', async () => {
  const h = await harness();
  try {
    const xml = started().replace(`<mac address='${MAC}'/>`, `<mac address='01:00:5e:00:00:01'/>`); // multicast: not a VIF's MAC
    await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], xml, h.deps);
    assert.ok(await h.store.getDoc(DOC_QUARANTINE, QKEY()));
    assert.match(h.logs.join('\n'), /multicast MAC/);
    h.applied.length = 0;
    await runLibvirtHook('qemu', ['lvdom1', 'stopped', 'end', '-'], stopped().replace(`<mac address='${MAC}'/>`, `<mac address='01:00:5e:00:00:01'/>`), h.deps);
    assert.equal((await h.store.listDocs(DOC_QUARANTINE)).length, 0);
    assert.deepEqual(h.applied, [{ networkUuid: h.netUuid }]);
  } finally {
    await h.cleanup();
  }
});

test('a domain with an invalid UUID: its tap on a managed network is disabled, nothing else is stored', async () => {
  const h = await harness();
  try {
    const xml = started().replace(`<uuid>${DOM_UUID}</uuid>`, '<uuid>not-a-uuid\u001b[31m</uuid>');
    await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], xml, h.deps);
    assert.equal((await h.store.listVms()).length, 0);
    const q = await h.store.getDoc<{ owner: string }>(DOC_QUARANTINE, QKEY());
    assert.ok(q);
    assert.ok(!q.value.owner.includes('\u001b'), 'stored escaped');
    assert.ok(h.logs.every((l) => !l.includes('\u001b')), 'logged escaped');
  } finally {
    await h.cleanup();
  }
});

test('a domain whose name breaks the naming rules is recorded and enforced as vm-<uuid>, its name kept escaped', async () => {
  for (const bad of ['evil\u001b[2Jname', 'web:1', 'a'.repeat(200), '0b0e7c7e-5b8f-4f39-9a43-7b0c8a0f0a01', '-rf']) {
    const h = await harness();
    try {
      const xml = started().replace('<name>lvdom1</name>', `<name>${bad}</name>`);
      assert.equal((await runLibvirtHook('qemu', ['x', 'started', 'begin', '-'], xml, h.deps)).code, 0);
      const vm = await h.store.getVm(DOM_UUID);
      assert.equal(vm?.name, `vm-${DOM_UUID}`, bad);
      const label = String(vm?.extra.libvirtDomain);
      assert.ok(!/[\u0000-\u001f]/.test(label), 'label escaped');
      assert.ok(label.length <= 300);
      if (bad.includes('\u001b')) assert.equal(label, 'evil\\x1b[2Jname');
      const [vif] = await h.store.listVifs(DOM_UUID);
      assert.equal(vif.ifname, 'vnet2');
      const rs = await bridgeRuleset(h.store);
      assert.deepEqual(rs.macs, [`"vnet2" . ${MAC}`], 'enforced');
      assert.ok(h.logs.some((l) => l.includes(`recorded as vm-${DOM_UUID}`)));
      // a later valid name is followed (a rename in libvirt)
      await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], started(), h.deps);
      assert.equal((await h.store.getVm(DOM_UUID))?.name, 'lvdom1');
    } finally {
      await h.cleanup();
    }
  }
});

test('invalid tap and bridge names are not recorded; a port with a hostile MAC is not recorded', async () => {
  const h = await harness();
  try {
    const xml = started().replace("<target dev='vnet2'/>", `<target dev='vnet2" } ; flush ruleset'/>`);
    await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], xml, h.deps);
    const [vif] = await h.store.listVifs(DOM_UUID);
    assert.equal(vif.ifname, null);
    assert.match(h.logs.join('\n'), /target dev .* is not a valid interface name; ignored/);
    const portXml = readFileSync(join(FIX, 'network-lvnat-port-created-begin.xml'), 'utf8').replace(`<mac address='${MAC}'/>`, `<mac address='${HOSTILE_MAC}'/>`);
    assert.ok(portXml.includes('table inet evil'));
    assert.equal((await runLibvirtHook('network', ['lvnat', 'port-created', 'begin', '-'], portXml, h.deps)).code, 0);
    assert.equal((await h.store.listDocs(DOC_PORT)).length, 0);
    assert.match(h.logs.at(-2) ?? '', /invalid fact: port .*not recorded: mac:/);
    const netXml = readFileSync(join(FIX, 'network-lvnat-started-begin.xml'), 'utf8').replace(/<bridge name='virbrT0'/, "<bridge name='br0;evil'");
    await runLibvirtHook('network', ['lvnat', 'started', 'begin', '-'], netXml, h.deps);
    assert.equal((await h.store.getNetwork(h.netUuid))?.bridge, 'virbrT0');
    assert.match(h.logs.join('\n'), /bridge 'br0;evil' is not a valid interface name; not recorded/);
  } finally {
    await h.cleanup();
  }
});

test('a hook with 100,000 interfaces on networks ipvisor does not manage writes nothing for them', async () => {
  const h = await harness();
  try {
    const one = (i: number) => {
      const mac = `52:54:01:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      return `<interface type='network'><mac address='${mac}'/><source network='other' bridge='virbr9'/><target dev='vnet${i}'/></interface>`;
    };
    const many = Array.from({ length: 100_000 }, (_, i) => one(i)).join('');
    const xml = started().replace('<interface type=', `${many}<interface type=`);
    const docsBefore = await Promise.all([DOC_TAP, DOC_PORT, DOC_QUARANTINE].map((k) => h.store.listDocs(k)));
    assert.deepEqual(docsBefore.map((d) => d.length), [0, 0, 0]);
    assert.equal((await runLibvirtHook('qemu', ['lvdom1', 'started', 'begin', '-'], xml, h.deps)).code, 0);
    assert.equal((await h.store.listDocs(DOC_TAP)).length, 1, 'only the tap on the managed network');
    assert.equal((await h.store.listDocs(DOC_QUARANTINE)).length, 0);
    const vifs = await h.store.listVifs(DOM_UUID);
    assert.equal(vifs.length, 1);
    assert.equal(vifs[0].mac, MAC);
  } finally {
    await h.cleanup();
  }
});
