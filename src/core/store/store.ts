// The Store port: every backend (SQLite now, PostgreSQL later) implements it, and callers see only
// Promises, so a networked backend can follow without touching them (Kysely's dialect idea).
import type { Assignment, AssignmentKind, AuditEvent, Network, Pool, Vif, Vm } from '../model/types.js';

/** A free interval of a pool, as sortable keys (see ipam/addr.ts: addressKey). */
export interface FreeInterval {
  poolUuid: string;
  start: bigint;
  end: bigint;
}

/** A VIF and an address family (see FreeSpaceStore.takeLowestFree). */
export interface AddressHolder {
  vifUuid: string;
  family: number;
}

export interface TakenAddress {
  start: bigint;
  /** Whether the holder already held an address of the family (false without a holder). */
  holderHasAddress: boolean;
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
  /** Also the events of what hangs off this object, as views.ts relatedTo finds them in the events'
   * documents (a VM: events about it, its VIFs and their addresses; a network: every event naming
   * it; a pool: its addresses'), OR-ed with `object`. A VM's VIFs are those the events since
   * `since`/`afterId` name (beforeId, actor and limit do not narrow that). */
  related?: { kind: 'vm' | 'network' | 'pool'; uuid: string };
  /** Only events with an id greater than this (the event stream resumes from Last-Event-ID). */
  afterId?: number;
  /** Only events with an id smaller than this (paging backwards from the newest). */
  beforeId?: number;
  /** Only events by this actor (token:NAME, user:NAME, cli, ...). */
  actor?: string;
  /** 'desc': the newest first (ORDER BY id DESC, so `limit` keeps the newest); default 'asc'. */
  order?: 'asc' | 'desc';
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

export type AssignmentCounts = { addresses: number; routedPrefixes: Array<{ family: number; prefixLength: number }> };

/** Assignments counted by pool, kind, family and prefix length: the caller turns prefix lengths
 * into sizes (an IPv6 prefix may hold up to 2^128 addresses, beyond SQL integers). `kind` is the
 * assignment's kind, except that a VIF's single addresses (primary and additional) count together
 * as 'address': the indexes tell them apart from the rest but not from each other, and reading the
 * rows to do so would read every document. */
export interface UsageCount {
  poolUuid: string;
  kind: AssignmentKind | 'address';
  family: number;
  prefixLength: number;
  count: number;
}

/** An assignment reduced to where it is and what it is (the marks of a pool's map), from indexes:
 * its first address, prefix length and kind ('address' for a VIF's single address, as above). */
export interface AssignmentSpan {
  start: bigint;
  prefixLength: number;
  kind: AssignmentKind | 'address';
}

/** A VIF's address as its views show it, read from the columns, not the document. */
export interface VifAddress {
  vifUuid: string;
  family: 4 | 6;
  /** Canonical text (as every assignment's document holds it: ip.ts formats it so). */
  address: string;
  prefixLength: number;
  kind: AssignmentKind;
}

export interface RequestRecord {
  requestId: string;
  fingerprint: string;
  assignmentUuid: string;
}

/** One committed change: every write transaction gets the next revision, and each row it touched
 * one entry (kind = what, key = which; host = the hypervisor host it concerns, when it has one). */
export interface Change {
  revision: number;
  kind: string;
  key: string;
  host: string | null;
}

export interface NetworkStore {
  listNetworks(): Promise<Network[]>;
  getNetwork(uuid: string): Promise<Network | undefined>;
  findNetworkByName(name: string): Promise<Network | undefined>;
  insertNetwork(n: Network): Promise<void>;
  updateNetwork(n: Network): Promise<void>;
  deleteNetwork(uuid: string): Promise<void>;
}

export interface PoolStore {
  listPools(networkUuid?: string): Promise<Pool[]>;
  getPool(uuid: string): Promise<Pool | undefined>;
  findPoolByName(name: string): Promise<Pool | undefined>;
  insertPool(p: Pool): Promise<void>;
  updatePool(p: Pool): Promise<void>;
  deletePool(uuid: string): Promise<void>;
}

export interface VmStore {
  listVms(): Promise<Vm[]>;
  getVm(uuid: string): Promise<Vm | undefined>;
  findVmByName(name: string): Promise<Vm | undefined>;
  insertVm(v: Vm): Promise<void>;
  updateVm(v: Vm): Promise<void>;
  deleteVm(uuid: string): Promise<void>;
}

export interface VifInContext {
  vif: Vif;
  vm: Vm;
  network: Network;
}

export interface VifStore {
  listVifs(vmUuid?: string): Promise<Vif[]>;
  getVif(uuid: string): Promise<Vif | undefined>;
  findVifByDevice(vmUuid: string, device: number): Promise<Vif | undefined>;
  findVifByMac(networkUuid: string, mac: string): Promise<Vif | undefined>;
  /** Device `device` of the VM named `vmName`, with its VM and network, in one read. */
  findVifInContext(vmName: string, device: number): Promise<VifInContext | undefined>;
  insertVif(v: Vif): Promise<void>;
  updateVif(v: Vif): Promise<void>;
  deleteVif(uuid: string): Promise<void>;
}

/** Assignments and the idempotency keys of the requests that made them. */
export interface AssignmentStore {
  listAssignments(q?: AssignmentQuery): Promise<Assignment[]>;
  getAssignment(uuid: string): Promise<Assignment | undefined>;
  findAssignmentByRequestId(requestId: string): Promise<Assignment | undefined>;
  insertAssignment(a: Assignment): Promise<void>;
  updateAssignment(a: Assignment): Promise<void>;
  deleteAssignment(uuid: string): Promise<void>;
  /** Whether the VIF already holds a (non-routed) address of the family: decides primary vs additional. */
  vifHoldsAddress(vifUuid: string, family: number): Promise<boolean>;
  countAssignments(poolUuid: string): Promise<AssignmentCounts>;
  getRequest(requestId: string): Promise<RequestRecord | undefined>;
  insertRequest(r: RequestRecord): Promise<void>;
  deleteRequestsFor(assignmentUuid: string): Promise<void>;
}

/** Read models counted, ranged and grouped in SQL, so a page that shows usage never lists a whole
 * pool's assignments (a half-full /16 is 32,768 documents). The answers equal those computed from
 * the full listings (test/foundation/usage-queries.test.ts compares them on both backends). */
export interface UsageStore {
  /** Assignments counted per pool, kind, family and prefix length (every pool, or those given). */
  countUsage(poolUuids?: string[]): Promise<UsageCount[]>;
  /** The same, for the assignments held by the VIFs of the VMs `owner` owns (a tenant's quota use;
   * never another owner's); here with every kind told apart. */
  countOwnerUsage(owner: string): Promise<UsageCount[]>;
  /** The assignments of a pool that overlap the keys [start, end] (a routed prefix starting before
   * `start` that reaches into it included), by address: one /24 of a map without the rest. */
  listAssignmentsInRange(poolUuid: string, start: bigint, end: bigint): Promise<Assignment[]>;
  /** Every assignment of a pool as a span, by address: index range scans, no row read. */
  listAssignmentSpans(poolUuid: string): Promise<AssignmentSpan[]>;
  /** The addresses of the VIFs given (of every VIF when absent), by family and address, from the
   * columns: a list of 1,000 VIFs with 32,768 addresses parses no document. */
  listVifAddresses(vifUuids?: string[]): Promise<VifAddress[]>;
}

/** The free-space index of pools and the holds of released addresses (ipam/allocator.ts maintains
 * both). A backend serialises these per pool: the first of them in a transaction locks the pool
 * (PostgreSQL: an advisory transaction lock on the pool; SQLite: the database write lock). */
export interface FreeSpaceStore {
  lowestFree(poolUuid: string): Promise<FreeInterval | undefined>;
  /** Takes the pool's lowest free address out of its free space in one step (allocation's common
   * case, one round trip on PostgreSQL): the address, undefined when the pool has no free address,
   * or 'expired-holds' with nothing changed when holds are due back first (ipam/allocator.ts
   * takeLowestReclaiming reclaims them and takes the address the long way). With `holder`, also
   * whether that VIF already holds an address of the family (vifHoldsAddress), read after the
   * take, i.e. with the pool locked, as a separate call would. */
  takeLowestFree(poolUuid: string, now: string, holder?: AddressHolder): Promise<TakenAddress | undefined | 'expired-holds'>;
  /** The free interval with the greatest start <= key. */
  freeAtOrBefore(poolUuid: string, key: bigint): Promise<FreeInterval | undefined>;
  /** The free interval with the smallest start > key. */
  freeAfter(poolUuid: string, key: bigint): Promise<FreeInterval | undefined>;
  /** Free intervals in ascending order starting at `fromKey` (used for aligned prefix search). */
  freeIntervals(poolUuid: string, fromKey?: bigint, limit?: number): Promise<FreeInterval[]>;
  insertFree(f: FreeInterval): Promise<void>;
  /** Replaces the free interval starting at `start` by `f` (one statement for delete + insert). */
  replaceFree(poolUuid: string, start: bigint, f: FreeInterval): Promise<void>;
  deleteFree(poolUuid: string, start: bigint): Promise<void>;
  clearFree(poolUuid: string): Promise<void>;
  insertHold(h: Hold): Promise<void>;
  listHolds(poolUuid: string): Promise<Hold[]>;
  /** Removes and returns holds whose time is up. */
  takeExpiredHolds(poolUuid: string, now: string): Promise<Hold[]>;
  deleteHolds(poolUuid: string): Promise<void>;
}

export interface AuditStore {
  insertEvent(e: Omit<AuditEvent, 'id'>): Promise<void>;
  listEvents(q?: EventQuery): Promise<AuditEvent[]>;
}

/** Documents and settings. */
export interface DocStore {
  getDoc<T = unknown>(kind: string, key: string): Promise<DocRecord<T> | undefined>;
  listDocs<T = unknown>(kind: string): Promise<DocRecord<T>[]>;
  putDoc<T = unknown>(kind: string, key: string, value: T): Promise<void>;
  deleteDoc(kind: string, key: string): Promise<void>;
}

/** The change feed (read side). Revisions grow with commit order: a reader that has seen
 * revision R and asks for changes since R never misses a change committed later. */
export interface ChangeStore {
  /** The revision of the last committed change (0 for a store without changes). */
  currentRevision(): Promise<number>;
  /** Changes with revision > `revision`, ascending, at most `limit` rows (whole revisions only when
   * a revision has more rows than the limit allows). */
  changesSince(revision: number, limit?: number): Promise<Change[]>;
}

/** Everything that can be read or written inside one transaction. */
export interface StoreTx extends NetworkStore, PoolStore, VmStore, VifStore, AssignmentStore, UsageStore, FreeSpaceStore, AuditStore, DocStore, ChangeStore {}

export interface TransactionOptions {
  /** A transaction that writes: SQLite takes the write lock at BEGIN (BEGIN IMMEDIATE); required
   * for allocation. PostgreSQL locks per pool as the free-space index is read. */
  write?: boolean;
}

/** Called after a commit that produced a revision (in this process), and, for changes made by other
 * processes or servers, when the backend learns of them (PostgreSQL NOTIFY; SQLite data_version
 * polling). A wake-up, not the data: read changesSince() for what changed. */
export type ChangeListener = (revision: number) => void;

/** Which store this is: `id` is a UUID made when the store was created (kept in its meta), so a
 * store replaced by a different or recreated one is told apart from a restored copy of itself. */
export interface StoreIdentity {
  id: string;
  /** Where it is, for messages (SQLite: the file path). */
  location: string;
}

/** A store: a transaction factory. Its own StoreTx methods each run in a transaction of their own
 * (or join the caller's transaction when called inside transaction()). */
export interface Store extends StoreTx {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the store is, as a --store URL (sqlite:PATH or postgresql://...), without a password. */
  readonly url: string;
  identity(): Promise<StoreIdentity>;
  /** File-backed stores: whether the path now names another file than the one opened (a backup
   * restored with `mv`); serve then reopens it. Absent for server-backed stores. */
  replacedOnDisk?(): boolean;
  /** The backend's own consistency check (SQLite: integrity_check and foreign_key_check): one line
   * per problem, [] when sound. Absent where the server checks itself (PostgreSQL). */
  integrityCheck?(): Promise<string[]>;
  /** Runs fn in one transaction; commits when it resolves, rolls back when it throws. The tx object
   * is valid until fn's promise settles. Nested calls join the outer transaction. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /** Calls `listener` on every new revision; returns the function that stops it. */
  watch(listener: ChangeListener): () => void;
  close(): Promise<void>;
}
