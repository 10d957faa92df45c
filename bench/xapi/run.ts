// XAPI sync figures against the simulator: the initial import of a pool, then how long one VIF
// change takes to reach the store through event.from (what `serve` does) versus re-reading every
// record (polling, the alternative), and a locking plan over every VIF.
// Run: node --import tsx bench/xapi/run.ts [VMS]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startXapiSim } from '../../test/support/xapi-sim/sim.js';
import { openStore } from '../../src/core/store/open.js';
import { addConnection, connectionClient } from '../../src/server/xapi/connections.js';
import { XapiPoolSync, applyInventory, compileInventory } from '../../src/server/xapi/sync.js';
import { XapiCache } from '../../src/server/xapi/cache.js';
import { xapiEnforcer } from '../../src/server/xapi/enforcer.js';

const VMS = Number(process.argv[2] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), 'ipvisor-bench-xapi-'));
const sim = await startXapiSim();
const net = sim.refByName('network', 'sspn-internal');
for (let i = 0; i < VMS; i++) {
  const ref = sim.createVm(`bench-${i}`, { power_state: 'Running', domid: 100 + i });
  for (let d = 0; d < 2; d++) {
    const mac = `02:${[i >> 16, (i >> 8) & 255, i & 255, d, 1].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    const vif = sim.add('VIF', { uuid: randomUUID(), device: String(d), network: net, VM: ref, MAC: mac, currently_attached: true, locking_mode: 'network_default', ipv4_allowed: [], ipv6_allowed: [] });
    sim.record('VM', ref).VIFs.push(vif);
  }
}
const pw = join(dir, 'pw');
writeFileSync(pw, 'secret', { mode: 0o600 });
const store = await openStore(join(dir, 'ipvisor.db'), { create: true });
const conn = await addConnection(store, { name: 'bench', url: sim.url, user: 'root', passwordFile: pw }, 'bench');
const client = connectionClient(conn);
const ms = (t: bigint): string => (Number(process.hrtime.bigint() - t) / 1e6).toFixed(1);

let t = process.hrtime.bigint();
const syncer = new XapiPoolSync(store, conn, client);
const first = await syncer.full();
const initial = ms(t);

// One VIF change, event-driven: event.from returns the one VIF, then the store is updated.
const vifRef = [...sim.table('VIF').keys()].at(-1)!;
const rounds = 20;
let evTotal = 0;
let pollTotal = 0;
for (let r = 0; r < rounds; r++) {
  sim.modify('VIF', vifRef, { MAC: `02:ff:00:00:${(r >> 8).toString(16).padStart(2, '0')}:${(r & 255).toString(16).padStart(2, '0')}` });
  t = process.hrtime.bigint();
  await syncer.step(5);
  evTotal += Number(process.hrtime.bigint() - t) / 1e6;
  // Polling: re-read every record and recompute.
  sim.modify('VIF', vifRef, { MAC: `02:fe:00:00:${(r >> 8).toString(16).padStart(2, '0')}:${(r & 255).toString(16).padStart(2, '0')}` });
  t = process.hrtime.bigint();
  const cache = new XapiCache(syncer.cache.classes);
  await cache.loadAll(client);
  await applyInventory(store, conn, compileInventory(cache));
  pollTotal += Number(process.hrtime.bigint() - t) / 1e6;
  await syncer.step(0.01); // consume the polled change's event
}
t = process.hrtime.bigint();
const plan = await xapiEnforcer.plan({ store, actor: 'bench', dryRun: true, log: () => undefined });
const planMs = ms(t);

console.log(`XAPI sync, ${VMS} VMs / ${VMS * 2} VIFs (simulator on loopback, SQLite store)`);
console.log(`  initial import (inject + get_all_records + store)    ${initial} ms  (${first.created.length} objects created)`);
console.log(`  one VIF change -> store, event.from (serve)          ${(evTotal / rounds).toFixed(1)} ms`);
console.log(`  one VIF change -> store, re-read everything (poll)   ${(pollTotal / rounds).toFixed(1)} ms`);
console.log(`  locking plan over every VIF (one-shot login + read)  ${planMs} ms  (${plan.length} changes)`);

await client.logout();
await store.close();
await sim.close();
rmSync(dir, { recursive: true, force: true });
