// What every backend shares: a Store is a transaction factory. A backend implements begin/commit of
// its own transaction objects; this class makes the store's own StoreTx methods run each in a
// transaction of their own, lets nested transaction() calls (and plain calls made inside one) join
// the running transaction, and fans revisions out to watchers.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ChangeListener, Store, StoreIdentity, StoreTx, TransactionOptions } from './store.js';

/** Every method of StoreTx, so the store can forward each one (typed: a missing or extra name fails
 * to compile). */
const TX_METHODS = {
  listNetworks: 0, getNetwork: 0, findNetworkByName: 0, insertNetwork: 1, updateNetwork: 1, deleteNetwork: 1,
  listPools: 0, getPool: 0, findPoolByName: 0, insertPool: 1, updatePool: 1, deletePool: 1,
  listVms: 0, getVm: 0, findVmByName: 0, insertVm: 1, updateVm: 1, deleteVm: 1,
  listVifs: 0, getVif: 0, findVifByDevice: 0, findVifByMac: 0, findVifInContext: 0, insertVif: 1, updateVif: 1, deleteVif: 1,
  listAssignments: 0, getAssignment: 0, findAssignmentByRequestId: 0, insertAssignment: 1, updateAssignment: 1, deleteAssignment: 1,
  vifHoldsAddress: 0, countAssignments: 0, getRequest: 0, insertRequest: 1, deleteRequestsFor: 1,
  countUsage: 0, countOwnerUsage: 0, listAssignmentsInRange: 0, listAssignmentSpans: 0, listVifAddresses: 0,
  lowestFree: 0, takeLowestFree: 1, freeAtOrBefore: 0, freeAfter: 0, freeIntervals: 0, insertFree: 1, replaceFree: 1, deleteFree: 1, clearFree: 1,
  insertHold: 1, listHolds: 0, takeExpiredHolds: 1, deleteHolds: 1,
  insertEvent: 1, listEvents: 0,
  getDoc: 0, listDocs: 0, putDoc: 1, deleteDoc: 1,
  currentRevision: 0, changesSince: 0,
} satisfies Record<keyof StoreTx, 0 | 1>;

/** One entry of a transaction's change journal, resolved to a host at commit where it has one:
 * given directly (a VM's host), through the VM (a VIF), or through the VIF's VM (an assignment). */
export interface JournalEntry {
  kind: string;
  key: string;
  host?: string | null;
  vmUuid?: string | null;
  vifUuid?: string | null;
}

type AnyFn = (...args: unknown[]) => Promise<unknown>;

// Declaration merging: the class has every StoreTx method, installed by the constructor.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface BaseStore extends StoreTx {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class BaseStore implements Store {
  abstract readonly kind: 'sqlite' | 'postgres';
  abstract readonly url: string;
  private readonly current = new AsyncLocalStorage<StoreTx>();
  private readonly listeners = new Set<ChangeListener>();
  private lastNotified = 0;

  constructor() {
    for (const [name, writes] of Object.entries(TX_METHODS)) {
      (this as unknown as Record<string, AnyFn>)[name] = (...args: unknown[]) => {
        const tx = this.current.getStore();
        if (tx) return (tx as unknown as Record<string, AnyFn>)[name](...args);
        return this.transaction((t) => (t as unknown as Record<string, AnyFn>)[name](...args), { write: writes === 1 });
      };
    }
  }

  /** Begins a backend transaction, runs fn with its tx object, commits (returning the revision the
   * commit made, or undefined when it wrote no change) or rolls back when fn throws. */
  protected abstract run<T>(fn: (tx: StoreTx) => Promise<T>, opts: TransactionOptions): Promise<{ result: T; revision: number | undefined }>;

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    const outer = this.current.getStore();
    if (outer) return fn(outer); // nested: join the outer transaction
    const { result, revision } = await this.run((tx) => this.current.run(tx, () => fn(tx)), opts);
    if (revision !== undefined) this.notify(revision);
    return result;
  }

  watch(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.startWatching();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopWatching();
    };
  }

  /** Tells watchers about a revision (once each, in ascending order). */
  protected notify(revision: number): void {
    if (revision <= this.lastNotified) return;
    this.lastNotified = revision;
    for (const l of [...this.listeners]) {
      try {
        l(revision);
      } catch {
        // A watcher's failure is its own; the commit it reports has happened.
      }
    }
  }

  /** Starts learning of other processes' commits (first watcher). */
  protected abstract startWatching(): void;
  protected abstract stopWatching(): void;
  abstract identity(): Promise<StoreIdentity>;
  abstract close(): Promise<void>;
}

/** A transaction object is valid only while its transaction runs. */
export function assertOpen(done: boolean): void {
  if (done) throw new Error('store transaction used after it ended');
}
