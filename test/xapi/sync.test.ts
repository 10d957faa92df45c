import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, chmodSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { openStore } from '../../src/core/store/open.js';
import type { Store } from '../../src/core/store/store.js';
import { getConnection, connectionClient } from '../../src/server/xapi/connections.js';
import { XapiPoolSync } from '../../src/server/xapi/sync.js';
import { setNetwork } from '../../src/core/service/networks.js';
import { createPool } from '../../src/core/service/pools.js';
import { allocate } from '../../src/core/service/ip.js';

let sim: XapiSim;
let db: string;
let cleanup: () => void;
let pw: string;
before(async () => {
  sim = await startXapiSim();
  ({ db, cleanup } = tempDb());
  pw = join(dirname(db), 'pw');
  writeFileSync(pw, 'secret\n');
  chmodSync(pw, 0o600);
});
after(async () => {
  await sim.close();
  cleanup();
});

async function withStore<T>(fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await openStore(db, { create: true });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

test('connect refuses a readable password file, bad URLs, wrong passwords; stores the path only', async () => {
  const open = join(dirname(db), 'pw-open');
  writeFileSync(open, 'secret');
  chmodSync(open, 0o644);
  let r = await cli(db, 'xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', open, '--json');
  assert.equal(r.code, 2);
  assert.equal(r.error?.field, 'password-file');
  r = await cli(db, 'xapi', 'connect', 'lab', '--url', 'ftp://x', '--user', 'root', '--password-file', pw);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^ipvisor: url: /);
  const bad = join(dirname(db), 'pw-bad');
  writeFileSync(bad, 'wrong', { mode: 0o600 });
  r = await cli(db, 'xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', bad);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /SESSION_AUTHENTICATION_FAILED/);
  assert.doesNotMatch(r.stderr, /wrong/);

  r = await cli(db, 'xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.passwordFile, pw);
  assert.ok(!JSON.stringify(r.json).includes('secret'));
  r = await cli(db, 'xapi', 'list');
  assert.match(r.stdout, /lab\s+http:\/\/127\.0\.0\.1:\d+\s+root/);
  // The store holds no password.
  assert.ok(!readFileSync(db).includes(Buffer.from('secret')));
});

test('sync: networks, guest VMs and VIFs appear; templates, snapshots, dom0 and the HIMN do not', async () => {
  sim.createVm('a-template', { is_a_template: true });
  sim.createVm('a-snapshot', { is_a_snapshot: true });
  const r = await cli(db, 'xapi', 'sync');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  // The human summary lists what appeared (it once listed nothing and said "... N more").
  assert.match(r.stdout, /^lab: 7 created/);
  assert.match(r.stdout, /\n {2}\+ .*web-01/);
  assert.doesNotMatch(r.stdout, /more \(use --json/);
  await withStore(async (s) => {
    const vms = (await s.listVms()).map((v) => v.name).sort();
    assert.deepEqual(vms, ['db-01', 'web-01']);
    const web = (await s.findVmByName('web-01'))!;
    assert.equal(web.uuid, 'bde47d4c-dd02-5b2b-8d01-4fa656cdf146', 'XAPI UUIDs are kept');
    const nets = await s.listNetworks();
    assert.deepEqual(nets.map((n) => n.name).sort(), ['Pool-wide network associated with eth0', 'sspn-internal']);
    const sspn = nets.find((n) => n.name === 'sspn-internal')!;
    assert.equal(sspn.driver, 'xapi');
    assert.equal(sspn.bridge, 'xapi1');
    assert.equal(sspn.mode, 'isolated');
    assert.equal((sspn.extra.xapi as { uuid: string }).uuid, 'b2e3a258-92fb-5a6a-8cf0-dc321a50ee3b');
    const vifs = await s.listVifs(web.uuid);
    assert.deepEqual(vifs.map((v) => [v.device, v.mac, v.ifname]).sort(), [[0, '4e:1f:7d:2a:9b:01', 'vif3.0'], [1, '4e:1f:7d:2a:9b:02', 'vif3.1']]);
    const events = await s.listEvents({ limit: 100 });
    assert.ok(events.some((e) => e.actor === 'sync' && e.objectKind === 'vm' && e.action === 'create'));
  });
  // A second sync changes nothing.
  const again = await cli(db, 'xapi', 'sync', '--json');
  assert.deepEqual([again.json[0].created, again.json[0].updated, again.json[0].deleted], [[], [], []]);
});

test('sync: colliding names get a stable suffix, UUIDs always work', async () => {
  const ref = sim.createVm('web-01');
  const uuid = sim.record('VM', ref).uuid as string;
  await cli(db, 'xapi', 'sync');
  await withStore(async (s) => {
    const dup = (await s.getVm(uuid))!;
    assert.equal(dup.name, `web-01~${uuid.slice(0, 8)}`);
    assert.equal((await s.findVmByName('web-01'))!.uuid, 'bde47d4c-dd02-5b2b-8d01-4fa656cdf146');
  });
  await cli(db, 'xapi', 'sync');
  await withStore(async (s) => assert.equal((await s.getVm(uuid))!.name, `web-01~${uuid.slice(0, 8)}`));
  sim.remove('VM', ref);
  await cli(db, 'xapi', 'sync');
  await withStore(async (s) => assert.equal(await s.getVm(uuid), undefined));
});

test('deleting a VIF or VM in XAPI releases its addresses (audit-logged, actor sync); the event loop follows', async () => {
  await withStore(async (s) => {
    await setNetwork(s, 'sspn-internal', { subnets: ['10.99.0.0/24,gateway=10.99.0.1'] }, 'tester');
    await createPool(s, { name: 'sspn-v4', network: 'sspn-internal', cidrs: ['10.99.0.0/24'] }, 'tester');
    const a = await allocate(s, { vif: 'web-01:1', address: '10.99.0.10' }, 'tester');
    assert.equal(a.assignment.address, '10.99.0.10');
    await allocate(s, { vif: 'db-01:0', address: '10.99.0.20' }, 'tester');
  });
  const store = await openStore(db, { create: true });
  const conn = await getConnection(store, 'lab');
  const client = connectionClient(conn);
  try {
    const syncer = new XapiPoolSync(store, conn, client);
    await syncer.full();
    // A VIF hot-plugged in XAPI appears through event.from.
    const newVif = sim.addVif('web-01', 'Pool-wide network associated with eth0', { MAC: '02:11:22:33:44:55' });
    let step = await syncer.step(2);
    assert.ok(step.report?.created.includes('vif web-01:2'), JSON.stringify(step.report));
    assert.ok(await store.getVif(sim.record('VIF', newVif).uuid));
    // Deleting web-01's VIF 1 in XAPI releases 10.99.0.10.
    const vif1 = sim.refByUuid('VIF', '4b710316-1e00-5471-9f9e-776a512e68ae');
    sim.deleteVif(vif1);
    step = await syncer.step(2);
    assert.deepEqual(step.report?.released, ['10.99.0.10']);
    assert.equal((await store.listAssignments({ address: '10.99.0.10' })).length, 0);
    const rel = (await store.listEvents({ limit: 200 })).find((e) => e.action === 'release' && e.objectName === '10.99.0.10');
    assert.equal(rel?.actor, 'sync');
    // A device number freed and reused within one batch (delete + hot-plug) syncs cleanly.
    const dev2 = sim.refByUuid('VIF', sim.record('VIF', newVif).uuid);
    sim.deleteVif(dev2);
    const reused = sim.addVif('web-01', 'sspn-internal', { MAC: '02:11:22:33:44:66' });
    assert.equal(sim.record('VIF', reused).device, '1');
    step = await syncer.step(2);
    assert.deepEqual(step.report?.errors, []);
    assert.equal((await store.getVif(sim.record('VIF', reused).uuid))?.device, 1);
    const oldUuid = sim.record('VIF', reused).uuid as string;
    sim.deleteVif(reused);
    const again = sim.addVif('web-01', 'sspn-internal', { MAC: '02:11:22:33:44:77' });
    assert.equal(sim.record('VIF', again).device, '1');
    step = await syncer.step(2);
    assert.deepEqual(step.report?.errors, []);
    assert.equal(await store.getVif(oldUuid), undefined);
    assert.equal((await store.getVif(sim.record('VIF', again).uuid))?.mac, '02:11:22:33:44:77');
    // SESSION_INVALID (toolstack restart): log in again and resync from scratch.
    sim.invalidateSessions();
    step = await syncer.step(1);
    assert.deepEqual(step.report?.errors, []);
    assert.ok(client.session && sim.sessions.has(client.session));
    // EVENTS_LOST: the next step resyncs from scratch (and sees a deletion that happened meanwhile).
    sim.loseEvents();
    sim.deleteVm('db-01');
    step = await syncer.step(1);
    assert.ok(step.report?.deleted.includes('vm db-01'), JSON.stringify(step.report));
    assert.deepEqual(step.report?.released, ['10.99.0.20']);
    assert.equal(await store.findVmByName('db-01'), undefined);
  } finally {
    await client.logout();
    await store.close();
  }
});

test('a VIF moved to another network in XAPI (VIF.move) loses its addresses on the old network', async () => {
  const store = await openStore(db, { create: true });
  const conn = await getConnection(store, 'lab');
  const client = connectionClient(conn);
  try {
    const syncer = new XapiPoolSync(store, conn, client);
    await syncer.full();
    const vif = (await store.listVifs((await store.findVmByName('web-01'))!.uuid)).find((v) => v.device === 1)!;
    await allocate(store, { vif: vif.uuid, address: '10.99.0.40' }, 'tester');
    sim.moveVif(sim.refByUuid('VIF', vif.uuid), 'Pool-wide network associated with eth0');
    const step = await syncer.step(2);
    assert.deepEqual(step.report?.released, ['10.99.0.40']);
    assert.equal((await store.getVif(vif.uuid))?.networkUuid, '5bd29d98-996e-5c49-98cf-a58ea1f4b56b');
    assert.equal((await store.listAssignments({ address: '10.99.0.40' })).length, 0);
    const rel = (await store.listEvents({ limit: 500 })).find((e) => e.action === 'release' && e.objectName === '10.99.0.40');
    assert.equal(rel?.actor, 'sync');
  } finally {
    await client.logout();
    await store.close();
  }
});

test('import vif-ip-binder writes the binder config and a private password file', async () => {
  const dir = dirname(db);
  const src = join(dir, 'vif-ip-binder.json');
  writeFileSync(src, JSON.stringify({ user: 'root', password: 'topsecret', vmName: 'pfsense', sspnName: 'SSPN', brName: 'xenbr1', address: '192.168.1.10/24', gateway: '192.168.1.1' }), { mode: 0o400 });
  const out = join(dir, 'etc', 'dom0.json');
  let r = await cli(db, 'import', 'vif-ip-binder', src, '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(cfg.xapi.password, undefined);
  assert.equal(readFileSync(cfg.xapi.passwordFile, 'utf8'), 'topsecret\n');
  assert.equal(statSync(cfg.xapi.passwordFile).mode & 0o777, 0o600);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.deepEqual(cfg.bindings, [{ vm: 'pfsense', network: 'SSPN', addresses: ['192.168.1.10/24'], gateway4: '192.168.1.1' }]);
  assert.ok(!r.stdout.includes('topsecret'));
  r = await cli(db, 'import', 'vif-ip-binder', src, '--out', out);
  assert.equal(r.code, 2, 'no silent overwrite');
  r = await cli(db, 'import', 'vif-ip-binder', out, '--out', join(dir, 'x.json'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /file: .* is not a vif-ip-binder\.json/);
  assert.ok(!existsSync(join(dir, 'x.json')));
});

test('xapi dom0 refuses a bad configuration with the field named (exit 2)', async () => {
  const bad = join(dirname(db), 'bad-dom0.json');
  writeFileSync(bad, JSON.stringify({ xapi: { passwordFile: pw }, bindings: [{ vm: 'fw', network: 'sspn', addresses: ['10.0.0.1'] }] }), { mode: 0o600 });
  const r = await cli(db, 'xapi', 'dom0', '--config', bad, '--json');
  assert.equal(r.code, 2);
  assert.equal(r.error?.field, 'bindings[0].addresses[0]');
  // A file that is not JSON: one line naming the field (JSON.parse's message quotes the text, newline included).
  const notJson = join(dirname(db), 'not-json.json');
  writeFileSync(notJson, 'nonjson\n{\n', { mode: 0o600 });
  for (const argv of [['xapi', 'dom0', '--config', notJson], ['import', 'vif-ip-binder', notJson, '--out', join(dirname(db), 'never.json')]]) {
    const bad2 = await cli(db, ...argv);
    assert.equal(bad2.code, 2, argv.join(' '));
    assert.match(bad2.stderr, /^ipvisor: (config|file): cannot read .*not valid JSON.*\n$/, argv.join(' '));
    assert.equal(bad2.stderr.split('\n').length, 2, `one line: ${bad2.stderr}`);
  }
  assert.equal(existsSync(join(dirname(db), 'never.json')), false, 'nothing written');
});
