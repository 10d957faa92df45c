// The usage picture of a pool for the web UI and the API: a summary per /24 (IPv4), the cells of one
// /24 with who holds each address, or the largest free blocks (IPv6). Read-only.
import { invalid } from '../model/errors.js';
import { type BlockSummary, type MapAssignment, type MapCell, blockCells, blockSummaries, largestFreeBlocks } from '../ipam/address-map.js';
import { parseCidr } from '../ipam/addr.js';
import type { StoreTx } from '../store/store.js';
import type { Assignment, Vif, Vm } from '../model/types.js';
import { type PoolUsage, poolUsage } from './pools.js';
import { poolRef, vifLabel } from './resolve.js';

export interface PoolMap {
  pool: string;
  family: 4 | 6;
  usage: PoolUsage;
  /** IPv4: one entry per /24 the pool touches. */
  blocks?: BlockSummary[];
  /** IPv4 with `block`: the 256 cells of that /24. */
  cells?: MapCell[];
  /** IPv6: the largest free aligned blocks. */
  largestFree?: string[];
}

/** The holder of each assignment (VM:DEVICE, else its note), looking up only the VIFs and VMs named. */
async function withHolders(tx: StoreTx, assignments: Assignment[]): Promise<MapAssignment[]> {
  const vifs = new Map<string, Vif | undefined>();
  const vms = new Map<string, Vm | undefined>();
  const out: MapAssignment[] = [];
  for (const a of assignments) {
    let vif: Vif | undefined;
    if (a.vifUuid) {
      if (!vifs.has(a.vifUuid)) vifs.set(a.vifUuid, await tx.getVif(a.vifUuid));
      vif = vifs.get(a.vifUuid);
    }
    let vm: Vm | undefined;
    if (vif) {
      if (!vms.has(vif.vmUuid)) vms.set(vif.vmUuid, await tx.getVm(vif.vmUuid));
      vm = vms.get(vif.vmUuid);
    }
    out.push({ ...a, holder: vif && vm ? vifLabel(vm, vif) : a.note });
  }
  return out;
}

export async function poolMap(tx: StoreTx, ref: string, opts: { block?: string } = {}): Promise<PoolMap> {
  const pool = await poolRef(tx, ref);
  const network = (await tx.getNetwork(pool.networkUuid))!;
  // Usage counted in SQL; the map reads one /24's assignments (a block) or every assignment's key,
  // length and kind (the summaries), never the documents of a whole pool (a half-full /16: 32,768).
  const out: PoolMap = { pool: pool.name, family: pool.family, usage: await poolUsage(tx, pool, network) };
  if (pool.family === 6) {
    if (opts.block) throw invalid('block', 'an IPv6 pool has no cell map; it is shown by its largest free blocks');
    out.largestFree = largestFreeBlocks(6, await tx.freeIntervals(pool.uuid, undefined, 10_000));
    return out;
  }
  const holds = await tx.listHolds(pool.uuid);
  if (opts.block) {
    const c = parseCidr(opts.block, 'block', { strict: true });
    if (c.family !== 4 || c.prefixLength !== 24) throw invalid('block', `'${opts.block}' is not an IPv4 /24`);
    const inBlock = await tx.listAssignmentsInRange(pool.uuid, c.network, c.network + 255n);
    out.cells = blockCells({ pool, network, holds, assignments: await withHolders(tx, inBlock) }, opts.block);
  } else {
    out.blocks = blockSummaries({ pool, network, holds, assignments: await tx.listAssignmentSpans(pool.uuid) });
  }
  return out;
}
