// XAPI records pass the same validators as the CLI before anything is stored (issue 9): a VM whose
// name breaks the naming rules is still recorded, as vm-<uuid> with its XAPI name kept escaped; a
// VIF whose MAC is not a unicast MAC is not stored as given (reported, escaped).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, tempDb } from '../support/cli.js';
import { startXapiSim, type XapiSim } from '../support/xapi-sim/sim.js';
import { openStore } from '../../src/core/store/open.js';

let sim: XapiSim;
let db: string;
let cleanup: () => void;
before(async () => {
  sim = await startXapiSim();
  ({ db, cleanup } = tempDb());
  const pw = join(dirname(db), 'pw');
  writeFileSync(pw, 'secret\n', { mode: 0o600 });
  const r = await cli(db, 'xapi', 'connect', 'lab', '--url', sim.url, '--insecure-http', '--user', 'root', '--password-file', pw);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await sim.close();
  cleanup();
});

test('XAPI names that break the rules are recorded as vm-<uuid>, hostile MACs are not stored', async () => {
  const names = ['evil\u001b[2J:vm', '6a1c3b0e-2f4d-4b8a-9c7e-0d1e2f3a4b5c', 'x'.repeat(300)];
  const uuids: string[] = [];
  for (const n of names) {
    const ref = sim.createVm(n);
    uuids.push(sim.record('VM', ref).uuid as string);
    sim.addVif(n, 'sspn-internal', { MAC: `02:00:00:00:0${uuids.length}:01` });
  }
  sim.createVm('macvm');
  sim.addVif('macvm', 'sspn-internal', { MAC: '02:00:00:00:09:01 } ; flush ruleset' });
  sim.addVif('macvm', 'sspn-internal', { MAC: '01:00:5e:00:00:01' });
  const r = await cli(db, 'xapi', 'sync');
  assert.equal(r.code === 0 || r.code === 1, true, r.stderr);
  const s = await openStore(db);
  try {
    for (const [i, uuid] of uuids.entries()) {
      const vm = await s.getVm(uuid);
      assert.equal(vm?.name, `vm-${uuid}`, names[i]);
      const label = String(vm?.extra.hypervisorName);
      assert.ok(!/[\u0000-\u001f]/.test(label) && label.length <= 300, label);
      assert.equal((await s.listVifs(uuid)).length, 1, 'its VIF is recorded and enforced');
    }
    assert.equal((await s.getVm(uuids[0]))?.extra.hypervisorName, 'evil\\x1b[2J:vm');
    const macvm = (await s.findVmByName('macvm'))!;
    assert.deepEqual(await s.listVifs(macvm.uuid), [], 'no VIF stored with an invalid MAC');
    for (const v of await s.listVifs()) assert.match(v.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  } finally {
    await s.close();
  }
  // the report names both VIFs, escaped, one line each
  const out = r.stdout + r.stderr;
  assert.match(out, /mac: '02:00:00:00:09:01 } ; flush ruleset' is not a MAC address/);
  assert.match(out, /multicast MAC/);
  assert.ok(!out.includes('\u001b'));
});
