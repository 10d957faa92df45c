// A watcher is anything serve, server or agent runs alongside its reconcile loop: nftables monitor,
// libvirt event streams, XAPI event.from, guest agents. It reports changes by requesting a reconcile.
// Server-placed watchers (XAPI) get the store; agent-placed ones (libvirt events, guest push over
// qemu-ga, DHCP reservations) get what an agent has instead: its host's desired copy, a fact queue
// and the host's local state. `serve` runs the agent-placed ones against its in-process agent, so
// one code path serves the single box and every agent host.
import type { HostDesired } from './compile/host-desired.js';
import type { HostFact } from './control-plane.js';
import type { Store } from './store/store.js';

/** Host-local records (agent/state.ts HostLocalState): a watcher's own bookkeeping on this host. */
export interface HostRecords {
  get<T>(kind: string, key: string): T | undefined;
  list<T>(kind: string): Array<{ key: string; value: T }>;
  put<T>(kind: string, key: string, value: T): void;
  delete(kind: string, key: string): void;
}

/** What an agent-placed watcher sees of its host's agent (Agent.hostPort()). */
export interface HostPort {
  /** This host's name (the identity facts carry). */
  readonly name: string;
  /** The desired state enforced here: the control plane's copy plus local bindings. */
  desired(): HostDesired;
  /** Facts for the control plane: queued on disk, sent now when it is reachable, else on reconnect. */
  reportFacts(facts: HostFact[]): void;
  /** Called after a new desired copy was accepted; returns an unsubscribe function. */
  onDesired(listener: () => void): () => void;
  local: HostRecords;
}

export interface DaemonContext {
  /** The central store: server-placed watchers only (undefined in `ipvisor agent`). */
  store?: Store;
  /** The host's agent: agent-placed watchers only (undefined in `ipvisor server`). */
  host?: HostPort;
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

/** The store a server-placed watcher needs (a wiring mistake otherwise, not a user error). */
export function needStore(ctx: DaemonContext, watcher: string): Store {
  if (!ctx.store) throw new Error(`${watcher} runs on the control plane and needs its store`);
  return ctx.store;
}

/** The agent an agent-placed watcher needs. */
export function needHost(ctx: DaemonContext, watcher: string): HostPort {
  if (!ctx.host) throw new Error(`${watcher} runs on a hypervisor host and needs its agent`);
  return ctx.host;
}
