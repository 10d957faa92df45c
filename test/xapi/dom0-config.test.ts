import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertVifIpBinderConfig, parseDom0Config } from '../../src/agent/dom0/config.js';
import { loadDom0Config } from '../../src/agent/dom0/main.js';
import { Dom0Binder } from '../../src/agent/dom0/binder.js';
import type { HostRunner } from '../../src/agent/host/exec.js';
import { IpvisorError } from '../../src/core/model/errors.js';
import { startXapiSim } from '../support/xapi-sim/sim.js';

const legacy = {
  user: 'root',
  password: 'pw',
  vmName: 'pfsense',
  sspnName: 'SSPN',
  brName: 'xenbr1',
  address: '192.168.1.10/24',
  gateway: '192.168.1.1',
  netSRs: [{ '85e08ea1-e1f0-5f43-a967-2c2865ae064a': '192.168.1.5' }],
  timeout: 20.0,
};

test('vif-ip-binder.json converts to one binding with narrowing, gateway and SRs', () => {
  const cfg = parseDom0Config(convertVifIpBinderConfig(legacy));
  assert.deepEqual(cfg.bindings, [{ vm: 'pfsense', network: 'SSPN', addresses: ['192.168.1.10/24'], gateway4: '192.168.1.1' }]);
  assert.deepEqual(cfg.management, [{ bridge: 'xenbr1', address: '192.168.1.10/24' }]);
  assert.deepEqual(cfg.netSRs, [{ sr: '85e08ea1-e1f0-5f43-a967-2c2865ae064a', target: '192.168.1.5' }]);
  assert.equal(cfg.eventTimeout, 20);
  assert.equal(cfg.xapi.url, 'unix:/var/lib/xcp/xapi');
  // The legacy file loads directly too.
  assert.deepEqual(parseDom0Config(legacy).bindings, cfg.bindings);
  // IPv6 gateway lands in gateway6.
  const v6 = parseDom0Config({ ...legacy, address: 'fd00::10/64', gateway: 'fd00::1' });
  assert.equal(v6.bindings[0]!.gateway6, 'fd00::1');
});

test('bad configs fail with the field named', () => {
  const bad = (raw: unknown, field: RegExp): void =>
    assert.throws(() => parseDom0Config(raw), (e: unknown) => e instanceof IpvisorError && e.code === 'VALIDATION' && field.test(e.message));
  bad({ ...legacy, address: '192.168.1.10' }, /^address: /);
  bad({ ...legacy, vmName: undefined }, /^vmName: /);
  // bridge names by the one interface-name rule (no ':', nothing a shell or nft would read)
  bad({ ...legacy, brName: 'xenbr1:0' }, /^management\[0\]\.bridge: /);
  bad({ ...legacy, brName: 'xenbr1; reboot' }, /^management\[0\]\.bridge: /);
  bad({ ...legacy, vmName: 'fw\u001b[2J' }, /^bindings\[0\]\.vm: .*control characters/);
  // plain http to XAPI only when the config says so (the password would cross the network in clear)
  bad({ xapi: { url: 'http://192.0.2.10', passwordFile: '/x' }, bindings: [{ vm: 'a', network: 'n', addresses: ['10.0.0.1/24'] }] }, /^xapi\.url: .*in clear/);
  bad({ xapi: { passwordFile: '/x' }, bindings: [{ vm: 'a', network: 'n', addresses: ['10.0.0.1/33'] }] }, /^bindings\[0\]\.addresses\[0\]: /);
  bad({ xapi: { passwordFile: '/x' }, bindings: [] }, /^bindings: /);
  bad({ xapi: {}, bindings: [{ vm: 'a', network: 'n', addresses: ['10.0.0.1/24'] }] }, /^xapi\.passwordFile: /);
  bad({ xapi: { passwordFile: '/x' }, bindings: [{ vm: 'a', network: 'n', addresses: ['10.0.0.1/24'], gateway4: 'fd00::1' }] }, /^bindings\[0\]\.gateway4: /);
});

test('a config holding a password, or a password file, must not be readable by others', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipvx-cfg-'));
  try {
    const p = join(dir, 'vif-ip-binder.json');
    writeFileSync(p, JSON.stringify(legacy));
    chmodSync(p, 0o644);
    assert.throws(() => loadDom0Config(p), /config: .* open to group or others/);
    chmodSync(p, 0o400);
    assert.equal(loadDom0Config(p).bindings.length, 1);
    const pw = join(dir, 'pw');
    writeFileSync(pw, 'x');
    chmodSync(pw, 0o640);
    const q = join(dir, 'dom0.json');
    writeFileSync(q, JSON.stringify({ xapi: { passwordFile: pw }, bindings: [{ vm: 'a', network: 'n', addresses: ['10.0.0.1/24'] }] }));
    assert.throws(() => loadDom0Config(q), /xapi\.passwordFile: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** No host commands in this test: every `ip` call reports a missing device. */
const noDevices: HostRunner = { netns: undefined, run: async () => ({ code: 1, stdout: '', stderr: 'Device does not exist' }) };

test('opt-in host recovery: enable a disabled host, start auto_poweron VMs in order, never "false" ones', async () => {
  const sim = await startXapiSim();
  try {
    const hostRef = [...sim.table('host').keys()][0]!;
    sim.modify('host', hostRef, { enabled: false });
    await sim.stopVm(sim.refByName('VM', 'web-01')).catch(() => undefined);
    sim.modify('VM', sim.refByName('VM', 'web-01'), { order: 3 });
    sim.modify('VM', sim.refByName('VM', 'db-01'), { other_config: { auto_poweron: 'true' }, order: 1, start_delay: 0 });
    sim.createVm('app-01', { other_config: { auto_poweron: 'true' }, order: 2 });
    sim.createVm('off-01', { other_config: { auto_poweron: 'false' }, order: 0 });
    const cfg = parseDom0Config({
      xapi: { url: sim.url, insecureHttp: true, password: 'secret' },
      bindings: [{ vm: 'web-01', network: 'sspn-internal', addresses: ['10.99.0.2/24'] }],
      recoverHost: true,
      stateFile: null,
      eventTimeout: 0.2,
      retryDelayMs: 50,
    });
    const logs: string[] = [];
    const binder = new Dom0Binder(cfg, { runner: noDevices, log: (l) => logs.push(l) });
    const ac = new AbortController();
    const running = binder.run(ac.signal);
    const end = Date.now() + 10000;
    while (binder.passes < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    await running;
    assert.equal(sim.record('host', hostRef).enabled, true);
    const started = sim.calls.filter((c) => c.method === 'VM.start' && !c.error).map((c) => sim.record('VM', c.params[1] as string).name_label);
    assert.deepEqual(started, ['db-01', 'app-01', 'web-01']);
    assert.equal(binder.status.get(0)?.state, 'no-bridge');
  } finally {
    await sim.close();
  }
});

test('host recovery is off by default and respects Xen Orchestra maintenance', async () => {
  const sim = await startXapiSim();
  try {
    const hostRef = [...sim.table('host').keys()][0]!;
    sim.modify('host', hostRef, { enabled: false, other_config: { 'xo:maintenanceState': '{}' } });
    for (const recoverHost of [false, true]) {
      const cfg = parseDom0Config({ xapi: { url: sim.url, insecureHttp: true, password: 'secret' }, bindings: [{ vm: 'x', network: 'y', addresses: ['10.0.0.1/24'] }], recoverHost, eventTimeout: 0.2, stateFile: null });
      const binder = new Dom0Binder(cfg, { runner: noDevices, log: () => undefined });
      const ac = new AbortController();
      const running = binder.run(ac.signal);
      const end = Date.now() + 5000;
      while (binder.passes < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      await running;
      assert.equal(binder.status.get(0)?.state, 'not-found');
    }
    assert.equal(sim.record('host', hostRef).enabled, false);
    assert.ok(!sim.calls.some((c) => c.method === 'host.enable'));
  } finally {
    await sim.close();
  }
});
