// The usage picture of a pool for the web UI and the API: a summary per /24 (IPv4), the cells of one
// /24 with who holds each address, or the largest free blocks (IPv6). Read-only.
import { invalid } from '../model/errors.js';
import { type BlockSummary, type MapCell, type MapInput, blockCells, blockSummaries, largestFreeBlocks } from '../ipam/address-map.js';
import { parseCidr } from '../ipam/addr.js';
import type { StoreTx } from '../store/store.js';
import type { Assignment, Network, Pool } from '../model/types.js';
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

async function mapInput(tx: StoreTx, pool: Pool, network: Network, assignments: Assignment[]): Promise<MapInput> {
  const poolUuid = pool.uuid;
  const vifs = new Map((await tx.listVifs()).map((v) => [v.uuid, v]));
  const vms = new Map((await tx.listVms()).map((v) => [v.uuid, v]));
  return {
    pool,
    network,
    assignments: assignments.map((a) => {
      const vif = a.vifUuid ? vifs.get(a.vifUuid) : undefined;
      const vm = vif ? vms.get(vif.vmUuid) : undefined;
      return { ...a, holder: vif && vm ? vifLabel(vm, vif) : a.note };
    }),
    holds: await tx.listHolds(poolUuid),
  };
}

export async function poolMap(tx: StoreTx, ref: string, opts: { block?: string } = {}): Promise<PoolMap> {
  const pool = await poolRef(tx, ref);
  const network = (await tx.getNetwork(pool.networkUuid))!;
  // Listed once for both the usage and the map (a half-full /16 is 32,768 rows).
  const assignments = pool.family === 4 ? await tx.listAssignments({ poolUuid: pool.uuid }) : undefined;
  const out: PoolMap = { pool: pool.name, family: pool.family, usage: await poolUsage(tx, pool, network, assignments) };
  if (pool.family === 6) {
    if (opts.block) throw invalid('block', 'an IPv6 pool has no cell map; it is shown by its largest free blocks');
    out.largestFree = largestFreeBlocks(6, await tx.freeIntervals(pool.uuid, undefined, 10_000));
    return out;
  }
  const input = await mapInput(tx, pool, network, assignments!);
  if (opts.block) {
    const c = parseCidr(opts.block, 'block', { strict: true });
    if (c.family !== 4 || c.prefixLength !== 24) throw invalid('block', `'${opts.block}' is not an IPv4 /24`);
    out.cells = blockCells(input, opts.block);
  } else {
    out.blocks = blockSummaries(input);
  }
  return out;
}
