// One driver per hypervisor behind one interface (DESIGN.md). The service layer and the CLI call
// drivers only through this, so a network's `driver` field decides which code runs.
import type { Network, NetworkDriver } from './model/types.js';
import type { Store } from './store/store.js';

export interface CreateNetworkInput {
  name: string;
  bridge?: string;
  mode?: string;
  /** "auto" or a CIDR (with optional ",gateway=IP"), as written on the command line. */
  subnets: string[];
  /** libvirt: "auto" or a CIDR for IPv6. */
  ipv6?: string;
  defaultLocking?: string;
  mtu?: number;
  dns?: string[];
  routes?: string[];
}

export interface HypervisorDriver {
  readonly name: NetworkDriver;
  /** Creates a network the driver manages itself (libvirt: define and start it). Optional: without
   * it, `network create` only records the network. */
  createManagedNetwork?(store: Store, input: CreateNetworkInput, actor: string): Promise<Network>;
  /** Called after addresses on one of the driver's networks changed, outside any hook (libvirt:
   * DHCP host reservations; XAPI: nothing, enforcement runs through plan/apply). */
  assignmentsChanged?(store: Store, network: Network, actor: string): Promise<void>;
  /** Called before a network of this driver is deleted from the store. */
  networkDeleted?(store: Store, network: Network, actor: string): Promise<void>;
}
