// Allocates N addresses for one VIF, one transaction each, and prints them as JSON.
// Used by the concurrency test and the IPAM benchmark: two of these race on one pool.
import { openStore } from '../../src/core/store/open.js';
import { allocate } from '../../src/core/service/ip.js';

const [db, vif, countText, sync] = process.argv.slice(2); // db: a path or a --store URL
const store = await openStore(db, { create: true, synchronous: (sync as 'NORMAL' | 'FULL') || 'NORMAL' });
const out: string[] = [];
const t0 = performance.now();
for (let i = 0; i < Number(countText); i++) {
  const r = await allocate(store, { vif }, 'worker');
  out.push(r.assignment.address);
}
const ms = performance.now() - t0;
await store.close();
process.stdout.write(JSON.stringify({ addresses: out, ms }));
