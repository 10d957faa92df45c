// Child of run.ts: times the one-VIF path from a small process, as a libvirt hook runs it
// (the big benchmark process forks slowly: every nft spawn would pay for its memory).
// Usage: one-vif.ts DB POOL_UUID VIF_UUID... ; prints {"times": [seconds, ...]}
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { applyHost } from '../../src/agent/host/apply.js';
import { createHostRunner } from '../../src/agent/host/exec.js';
import { openStore } from '../../src/core/store/open.js';

const [db, poolUuid, ...vifUuids] = process.argv.slice(2);
const store = await openStore(db, { create: true });
const runner = createHostRunner({ netns: undefined });
const pool = (await store.getPool(poolUuid))!;
const times: number[] = [];
for (const [k, vifUuid] of vifUuids.entries()) {
  const a = { uuid: randomUUID(), networkUuid: pool.networkUuid, poolUuid, vifUuid, family: 4 as const, address: `172.16.${k}.9`, prefixLength: 32, kind: 'additional' as const, note: null, requestId: null, createdAt: new Date().toISOString() };
  await store.insertAssignment(a);
  let t = performance.now();
  const c1 = await applyHost(store, { actor: 'bench', runner, scope: { vifUuid } });
  times.push((performance.now() - t) / 1000);
  await store.deleteAssignment(a.uuid);
  t = performance.now();
  const c2 = await applyHost(store, { actor: 'bench', runner, scope: { vifUuid } });
  times.push((performance.now() - t) / 1000);
  if (c1.length !== 1 || c2.length !== 1) throw new Error(`one-VIF change touched ${JSON.stringify(c1)} / ${JSON.stringify(c2)}`);
}
await store.close();
process.stdout.write(JSON.stringify({ times }) + '\n');
