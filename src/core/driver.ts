// One driver interface with capabilities (DESIGN.md; Incus' firewall driver + firewall_load.go): each
// driver says where it runs (the control plane or the agent on each host) and what it can do. The
// registry (src/drivers/index.ts) is the one place that lists them; serve, server, agent and the CLI
// ask it for the enforcers, watchers or network hooks of their placement instead of naming drivers.
import type { Network, NetworkDriver } from './model/types.js';
import type { Store } from './store/store.js';
import type { Enforcer } from './enforcer.js';
import type { DaemonWatcher } from './watcher.js';

/** Where a driver's code runs: the control plane (talks to XAPI pool masters, say) or every host's agent. */
export type DriverPlacement = 'server' | 'agent';

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

/** Capability: networks the hypervisor itself manages (libvirt defines and starts them). */
export interface ManagedNetworks {
  /** Creates a network the driver manages itself. Without it, `network create` only records the network. */
  createManagedNetwork?(store: Store, input: CreateNetworkInput, actor: string): Promise<Network>;
  /** Called after addresses on one of the driver's networks changed, outside any hook (libvirt:
   * DHCP host reservations). */
  assignmentsChanged?(store: Store, network: Network, actor: string): Promise<void>;
  /** Called before a network of this driver is deleted from the store. */
  networkDeleted?(store: Store, network: Network, actor: string): Promise<void>;
}

/** Capability: how a VM's network_data.json reaches its running guest. The registry runs a guest
 * auto-push watcher for it where the driver runs (src/drivers/index.ts). */
export interface GuestTransport {
  /** 'qga' (QEMU guest agent through libvirt's channel) or 'xapi' (VIF.configure_ipv4/6). */
  kind: 'qga' | 'xapi';
  describe: string;
}

export interface Driver {
  readonly name: string;
  readonly placement: DriverPlacement;
  /** The value of a network's `driver` field this driver serves (none for the host enforcer). */
  readonly networkDriver?: NetworkDriver;
  readonly enforcer?: Enforcer;
  /** Watchers that report changes while serve/server/agent runs (fresh instances per call). */
  watchers?(): Promise<DaemonWatcher[]>;
  readonly guestTransport?: GuestTransport;
  readonly managedNetworks?: ManagedNetworks;
}

