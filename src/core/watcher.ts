// A watcher is anything `ipvisor serve` runs alongside its reconcile loop: nftables monitor, libvirt
// event streams, XAPI event.from, guest agents. It reports changes by requesting a reconcile.
import type { Store } from './store/store.js';

export interface DaemonContext {
  store: Store;
  actor: string;
  /** Coalesced: many requests in a burst cause one reconcile. */
  requestReconcile(reason: string): void;
  log(msg: string): void;
  /** Aborted when serve stops. */
  signal: AbortSignal;
}

export interface DaemonWatcher {
  name: string;
  start(ctx: DaemonContext): Promise<void>;
  stop(): Promise<void>;
}
