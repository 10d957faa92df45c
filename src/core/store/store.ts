// The Store port: every backend (SQLite now, PostgreSQL later) implements it, and callers see only
// Promises, so a networked backend can follow without touching them (Kysely's dialect idea).
import type { Assignment, AuditEvent, Network, Pool, Vif, Vm } from '../model/types.js';

/** A free interval of a pool, as sortable keys (see ipam/addr.ts: addressKey). */
export interface FreeInterval {
  poolUuid: string;
  start: bigint;
  end: bigint;
}

export interface Hold {
  poolUuid: string;
  start: bigint;
  end: bigint;
  /** ISO time after which the interval is free again. */
  until: string;
}

export interface EventQuery {
  since?: string;
  /** Name or UUID of an object. */
  object?: string;
  limit?: number;
}

export interface AssignmentQuery {
  networkUuid?: string;
  poolUuid?: string;
  vifUuid?: string;
  vifUuids?: string[];
  address?: string;
}

/** A generic JSON document table for the state of drivers and appliers (host changes to revert,
 * XAPI connections, libvirt port bindings, ...), so that each feature needs no schema change. */
export interface DocRecord<T = unknown> {
  kind: string;
  key: string;
  value: T;
  updatedAt: string;
}

/** Everything that can be read or written inside one transaction. */
export interface StoreTx {
  // networks
  listNetworks(): Promise<Network[]>;
  getNetwork(uuid: string): Promise<Network | undefined>;
  findNetworkByName(name: string): Promise<Network | undefined>;
  insertNetwork(n: Network): Promise<void>;
  updateNetwork(n: Network): Promise<void>;
  deleteNetwork(uuid: string): Promise<void>;
  // pools
  listPools(networkUuid?: string): Promise<Pool[]>;
  getPool(uuid: string): Promise<Pool | undefined>;
  findPoolByName(name: string): Promise<Pool | undefined>;
  insertPool(p: Pool): Promise<void>;
  updatePool(p: Pool): Promise<void>;
  deletePool(uuid: string): Promise<void>;
  // vms
  listVms(): Promise<Vm[]>;
  getVm(uuid: string): Promise<Vm | undefined>;
  findVmByName(name: string): Promise<Vm | undefined>;
  insertVm(v: Vm): Promise<void>;
  updateVm(v: Vm): Promise<void>;
  deleteVm(uuid: string): Promise<void>;
  // vifs
  listVifs(vmUuid?: string): Promise<Vif[]>;
  getVif(uuid: string): Promise<Vif | undefined>;
  findVifByDevice(vmUuid: string, device: number): Promise<Vif | undefined>;
  findVifByMac(networkUuid: string, mac: string): Promise<Vif | undefined>;
  insertVif(v: Vif): Promise<void>;
  updateVif(v: Vif): Promise<void>;
  deleteVif(uuid: string): Promise<void>;
  // assignments
  listAssignments(q?: AssignmentQuery): Promise<Assignment[]>;
  getAssignment(uuid: string): Promise<Assignment | undefined>;
  findAssignmentByRequestId(requestId: string): Promise<Assignment | undefined>;
  insertAssignment(a: Assignment): Promise<void>;
  updateAssignment(a: Assignment): Promise<void>;
  deleteAssignment(uuid: string): Promise<void>;
  /** Whether the VIF already holds a (non-routed) address of the family: decides primary vs additional. */
  vifHoldsAddress(vifUuid: string, family: number): Promise<boolean>;
  countAssignments(poolUuid: string): Promise<{ addresses: number; routedPrefixes: Array<{ family: number; prefixLength: number }> }>;
  // free-space index of pools (ipam/allocator.ts maintains it)
  lowestFree(poolUuid: string): Promise<FreeInterval | undefined>;
  /** The free interval with the greatest start <= key. */
  freeAtOrBefore(poolUuid: string, key: bigint): Promise<FreeInterval | undefined>;
  /** The free interval with the smallest start > key. */
  freeAfter(poolUuid: string, key: bigint): Promise<FreeInterval | undefined>;
  /** Free intervals in ascending order starting at `fromKey` (used for aligned prefix search). */
  freeIntervals(poolUuid: string, fromKey?: bigint, limit?: number): Promise<FreeInterval[]>;
  insertFree(f: FreeInterval): Promise<void>;
  deleteFree(poolUuid: string, start: bigint): Promise<void>;
  clearFree(poolUuid: string): Promise<void>;
  // holds (released addresses waiting out the pool's hold time)
  insertHold(h: Hold): Promise<void>;
  listHolds(poolUuid: string): Promise<Hold[]>;
  /** Removes and returns holds whose time is up. */
  takeExpiredHolds(poolUuid: string, now: string): Promise<Hold[]>;
  deleteHolds(poolUuid: string): Promise<void>;
  // idempotency keys
  getRequest(requestId: string): Promise<{ requestId: string; fingerprint: string; assignmentUuid: string } | undefined>;
  insertRequest(r: { requestId: string; fingerprint: string; assignmentUuid: string }): Promise<void>;
  deleteRequestsFor(assignmentUuid: string): Promise<void>;
  // audit
  insertEvent(e: Omit<AuditEvent, 'id'>): Promise<void>;
  listEvents(q?: EventQuery): Promise<AuditEvent[]>;
  // documents and settings
  getDoc<T = unknown>(kind: string, key: string): Promise<DocRecord<T> | undefined>;
  listDocs<T = unknown>(kind: string): Promise<DocRecord<T>[]>;
  putDoc<T = unknown>(kind: string, key: string, value: T): Promise<void>;
  deleteDoc(kind: string, key: string): Promise<void>;
}

export interface TransactionOptions {
  /** Take the write lock at BEGIN (SQLite BEGIN IMMEDIATE); required for allocation. */
  write?: boolean;
}

export interface Store extends StoreTx {
  readonly kind: 'sqlite' | 'postgres';
  /** Runs fn in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}
