// A consistent, read-only picture of the store that the pure compilers take as input.
import type { Store, StoreTx } from '../store/store.js';
import type { Assignment, Network, Pool, Vif, Vm } from './types.js';

export interface Snapshot {
  networks: Network[];
  pools: Pool[];
  vms: Vm[];
  vifs: Vif[];
  assignments: Assignment[];
}

export async function loadSnapshot(store: Store | StoreTx): Promise<Snapshot> {
  const read = async (tx: StoreTx): Promise<Snapshot> => ({
    networks: await tx.listNetworks(),
    pools: await tx.listPools(),
    vms: await tx.listVms(),
    vifs: await tx.listVifs(),
    assignments: await tx.listAssignments(),
  });
  return 'transaction' in store ? store.transaction(read) : read(store);
}
