// A consistent, read-only picture of the store that the pure compilers take as input.
import type { Store, StoreTx } from '../store/store.js';
import type { Assignment, Network, Pool, Vif, Vm } from './types.js';

export interface Snapshot {
  networks: Network[];
  pools: Pool[];
  vms: Vm[];
  vifs: Vif[];
  assignments: Assignment[];
  /** Taps on managed bridges whose facts could not be recorded (an invalid MAC, a domain with an
   * invalid UUID): enforced as `disabled` until they can be. Skipping them would leave them unfiltered. */
  quarantinedTaps?: QuarantinedTap[];
}

/** Store doc kind of quarantined taps (key: quarantineKey(host, ifname)). */
export const DOC_QUARANTINE = 'quarantined-tap';

export const quarantineKey = (host: string, ifname: string): string => `${host}/${ifname}`;

export interface QuarantinedTap {
  /** The host the tap is on (the one whose hook saw it); only that host enforces it. */
  host: string;
  /** Host interface name (valid by model/validate.ts; a name that is not cannot be enforced at all). */
  ifname: string;
  networkUuid: string;
  /** Who owns it, escaped (the hypervisor's own identifier, perhaps invalid): lifts it when that domain stops. */
  owner: string;
  /** Why it is disabled, escaped, one line. */
  reason: string;
  since: string;
}

export async function loadSnapshot(store: Store | StoreTx): Promise<Snapshot> {
  const read = async (tx: StoreTx): Promise<Snapshot> => ({
    networks: await tx.listNetworks(),
    pools: await tx.listPools(),
    vms: await tx.listVms(),
    vifs: await tx.listVifs(),
    assignments: await tx.listAssignments(),
    quarantinedTaps: (await tx.listDocs<QuarantinedTap>(DOC_QUARANTINE)).map((d) => d.value),
  });
  return 'transaction' in store ? store.transaction(read) : read(store);
}
