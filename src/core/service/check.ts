// `ipvisor check`: is the store sound? Through the Store port (works on every backend): every
// pool's free-space index equals what its configuration, assignments and holds imply, and no row
// points at an object that is gone; plus the backend's own integrity check where it has one.
import { rebuildFreeSpace } from '../ipam/allocator.js';
import { subtract } from '../ipam/intervals.js';
import { assignmentInterval, usableIntervals } from '../ipam/pool-space.js';
import { formatAddress } from '../ipam/addr.js';
import type { Family } from '../model/types.js';
import type { Store } from '../store/store.js';

export interface CheckProblem {
  /** 'integrity' | 'free-space' | 'orphan' */
  kind: string;
  message: string;
  /** Fixed by --repair. */
  repaired?: boolean;
}

export interface CheckReport {
  healthy: boolean;
  problems: CheckProblem[];
  pools: number;
}

export async function checkStore(store: Store, opts: { repair?: boolean } = {}): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  for (const m of (await store.integrityCheck?.()) ?? []) problems.push({ kind: 'integrity', message: m });

  const networks = new Map((await store.listNetworks()).map((n) => [n.uuid, n]));
  const pools = await store.listPools();
  const poolIds = new Set(pools.map((p) => p.uuid));
  const vms = new Set((await store.listVms()).map((v) => v.uuid));
  const vifs = await store.listVifs();
  const vifIds = new Set(vifs.map((v) => v.uuid));
  for (const p of pools) if (!networks.has(p.networkUuid)) problems.push({ kind: 'orphan', message: `pool ${p.name} belongs to network ${p.networkUuid}, which does not exist` });
  for (const v of vifs) {
    if (!vms.has(v.vmUuid)) problems.push({ kind: 'orphan', message: `VIF ${v.uuid} belongs to VM ${v.vmUuid}, which does not exist` });
    if (!networks.has(v.networkUuid)) problems.push({ kind: 'orphan', message: `VIF ${v.uuid} is on network ${v.networkUuid}, which does not exist` });
  }
  for (const a of await store.listAssignments()) {
    if (!poolIds.has(a.poolUuid)) problems.push({ kind: 'orphan', message: `assignment ${a.address}/${a.prefixLength} belongs to pool ${a.poolUuid}, which does not exist` });
    if (a.vifUuid && !vifIds.has(a.vifUuid)) problems.push({ kind: 'orphan', message: `assignment ${a.address}/${a.prefixLength} belongs to VIF ${a.vifUuid}, which does not exist` });
  }

  for (const pool of pools) {
    const network = networks.get(pool.networkUuid);
    if (!network) continue;
    const assigned = (await store.listAssignments({ poolUuid: pool.uuid })).map(assignmentInterval);
    const held = (await store.listHolds(pool.uuid)).map((h) => ({ start: h.start, end: h.end }));
    const want = subtract(usableIntervals(pool, network), [...assigned, ...held]);
    const have = await store.freeIntervals(pool.uuid);
    const same = want.length === have.length && want.every((w, i) => w.start === have[i].start && w.end === have[i].end);
    if (same) continue;
    const fam = pool.family as Family;
    const show = (l: Array<{ start: bigint; end: bigint }>) => l.slice(0, 3).map((i) => (i.start === i.end ? formatAddress(fam, i.start) : `${formatAddress(fam, i.start)}-${formatAddress(fam, i.end)}`)).join(', ') + (l.length > 3 ? `, ... (${l.length})` : '');
    const problem: CheckProblem = {
      kind: 'free-space',
      message: `pool ${pool.name}: the free-space index (${have.length} interval(s): ${show(have) || 'none'}) is not what its ranges, assignments and holds imply (${want.length}: ${show(want) || 'none'}); ipvisor check --repair rebuilds it`,
    };
    if (opts.repair) {
      await store.transaction(async (tx) => {
        const p = await tx.getPool(pool.uuid);
        const n = p && (await tx.getNetwork(p.networkUuid));
        if (p && n) await rebuildFreeSpace(tx, p, n);
      }, { write: true });
      problem.repaired = true;
    }
    problems.push(problem);
  }
  return { healthy: problems.every((p) => p.repaired), problems, pools: pools.length };
}
