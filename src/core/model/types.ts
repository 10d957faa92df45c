// The data model every layer shares. Records are plain data (JSON-serialisable); addresses are
// canonical strings (RFC 5952 for IPv6) and numbers that can exceed 2^53 never appear as numbers.

export type Family = 4 | 6;
export type NetworkDriver = 'bridge' | 'libvirt' | 'xapi';
export type NetworkMode = 'nat' | 'routed' | 'isolated' | 'bridged' | 'open';
/** XAPI's vocabulary, used everywhere (DESIGN.md). */
export type LockingMode = 'unlocked' | 'locked' | 'disabled';
export type VifLocking = 'network_default' | LockingMode;
export type PoolPurpose = 'vif' | 'routed';
export type AssignmentKind = 'primary' | 'additional' | 'routed' | 'reserved';

export const NETWORK_DRIVERS: readonly NetworkDriver[] = ['bridge', 'libvirt', 'xapi'];
export const NETWORK_MODES: readonly NetworkMode[] = ['nat', 'routed', 'isolated', 'bridged', 'open'];
export const LOCKING_MODES: readonly LockingMode[] = ['unlocked', 'locked', 'disabled'];
export const VIF_LOCKINGS: readonly VifLocking[] = ['network_default', 'unlocked', 'locked', 'disabled'];
export const POOL_PURPOSES: readonly PoolPurpose[] = ['vif', 'routed'];

export interface Subnet {
  /** Canonical CIDR, e.g. "192.0.2.0/24" or "2001:db8::/64". */
  cidr: string;
  family: Family;
  /** Gateway inside the subnet, or an IPv6 link-local address; null when none. */
  gateway: string | null;
}

export interface StaticRoute {
  cidr: string;
  via: string;
}

export interface Network {
  uuid: string;
  name: string;
  driver: NetworkDriver;
  /** Host bridge name (virbr0, xenbr1, br-vms); null when not known yet. */
  bridge: string | null;
  mode: NetworkMode;
  subnets: Subnet[];
  mtu: number | null;
  dns: string[];
  routes: StaticRoute[];
  defaultLocking: LockingMode;
  /** Uplink interface for proxy ARP/NDP of routed addresses (host-enforcement issue). */
  uplink: string | null;
  /** Addresses the host itself holds on the bridge, "ADDR/LEN". Never handed out. */
  hostAddresses: string[];
  /** Driver-specific facts (libvirt network name, XAPI refs, ...). */
  extra: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

/** One piece of a pool as the user wrote it: a CIDR or an inclusive range. */
export interface PoolEntry {
  /** As displayed: "10.0.0.0/24" or "10.0.0.10-10.0.0.50". */
  text: string;
  first: string;
  last: string;
}

export interface Pool {
  uuid: string;
  name: string;
  networkUuid: string;
  family: Family;
  purpose: PoolPurpose;
  entries: PoolEntry[];
  /** Excluded addresses or CIDRs, as written (canonicalised). */
  exclusions: string[];
  /** Seconds a released address stays unavailable (DHCP lease time). */
  holdSeconds: number;
  createdAt: string;
  updatedAt: string;
}

export interface Vm {
  uuid: string;
  name: string;
  host: string;
  owner: string | null;
  extra: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface Vif {
  uuid: string;
  vmUuid: string;
  device: number;
  /** Lower-case, colon-separated. */
  mac: string;
  networkUuid: string;
  locking: VifLocking;
  /** Host-side interface name (vnet3, vif5.0) while the VM runs; null otherwise. */
  ifname: string | null;
  /** When ifname was last set: of two VIFs claiming one interface name (a stale binding after a
   * crash), the later bound one owns it. Absent in records written before it existed. */
  boundAt?: string | null;
  extra: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface Assignment {
  uuid: string;
  networkUuid: string;
  poolUuid: string;
  /** null for reservations. */
  vifUuid: string | null;
  family: Family;
  /** Canonical address (the prefix's first address for routed prefixes). */
  address: string;
  /** 32/128 for single addresses. */
  prefixLength: number;
  kind: AssignmentKind;
  note: string | null;
  requestId: string | null;
  createdAt: string;
}

export interface AuditEvent {
  id: number;
  time: string;
  actor: string;
  action: string;
  objectKind: string;
  objectUuid: string | null;
  objectName: string | null;
  before: unknown;
  after: unknown;
  /** The API request (or CLI request id) that made the change; null for older events. */
  requestId?: string | null;
}
