// `ipvisor serve` (one box) and the control-plane half of `ipvisor server`: apply on start, then
// re-verify periodically and whenever a watcher reports a change (nft monitor, libvirt/XAPI events).
// Requests in a burst are coalesced into one reconcile; every repair is logged as an audit event with
// actor 'serve'. The host's own enforcement runs as an agent on the in-process ControlPlane adapter:
// the same code as `ipvisor agent`, with no network between it and the store.
import type { Enforcer, PlanChange } from '../core/enforcer.js';
import { formatPlanChange } from '../core/enforcer.js';
import { loadEnforcers, loadWatchers } from '../drivers/index.js';
import type { Store } from '../core/store/store.js';
import type { DaemonWatcher } from '../core/watcher.js';
import { countRepairs } from '../core/metrics.js';

export interface ServeOptions {
  store: Store;
  /** Opens the store at the same place again: called when the file was replaced (store.replacedOnDisk). */
  reopen?: () => Promise<Store>;
  /** Enforce a store with another identity than the enforced one too (STORE_IDENTITY). */
  force?: boolean;
  actor?: string;
  /** Periodic re-verify interval (default 5 s). */
  intervalMs?: number;
  /** Delay that coalesces a burst of change requests (default 50 ms). */
  debounceMs?: number;
  log(msg: string): void;
  signal: AbortSignal;
  enforcers?: Enforcer[];
  watchers?: DaemonWatcher[];
  /** Run the host's agent in-process (default true; `ipvisor server` runs only the server placement). */
  agent?: boolean;
  /** The host's state directory (default: beside the store). */
  stateDir?: string;
}

/** The reasons of a coalesced burst, for the log: `nft flush ruleset` alone is ~70 nft events. */
export function summariseReasons(reasons: string[], max = 3): string {
  const unique = [...new Set(reasons)];
  return unique.length <= max ? unique.join(', ') : `${unique.slice(0, max).join(', ')} and ${unique.length - max} more`;
}

/** A Store that forwards to whichever store is current, so the control plane, enforcers and
 * watchers follow a reopen. */
function swappableStore(initial: Store): { store: Store; current(): Store; swap(next: Store): void } {
  let cur = initial;
  const store = new Proxy({} as Store, {
    get(_t, prop) {
      const v = (cur as unknown as Record<string | symbol, unknown>)[prop];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(cur) : v;
    },
  });
  return { store, current: () => cur, swap: (next) => (cur = next) };
}

export async function serve(opts: ServeOptions): Promise<void> {
  const actor = opts.actor ?? 'serve';
  const held = swappableStore(opts.store);
  let reopenFailure: string | undefined;
  let usable = true;
  /**
   * A store file replaced under us (a backup restored with mv) is reopened. The old connection is
   * closed first: SQLite finds its -wal and -shm files by name, and the old file's must not be
   * read as the new one's. A new file that cannot be opened is not followed: nothing is applied from
   * it until one can, and the host keeps what it enforces. Whether a reopened store with another
   * identity may change the host is the agent's and the host applier's decision (STORE_IDENTITY).
   */
  const followReplacement = async (): Promise<'same' | 'reopened' | 'unusable'> => {
    const cur = held.current();
    if (!opts.reopen || !cur.replacedOnDisk?.()) return usable ? 'same' : 'unusable';
    await cur.close().catch(() => undefined);
    try {
      const next = await opts.reopen();
      held.swap(next);
      usable = true;
      reopenFailure = undefined;
      controlPlane?.storeReplaced();
      opts.log(`store ${cur.url} was replaced on disk; reopened it`);
      return 'reopened';
    } catch (err) {
      usable = false;
      const msg = err instanceof Error ? err.message : String(err);
      if (msg !== reopenFailure) opts.log(`store ${cur.url} was replaced on disk by a file that cannot be used (${msg}); nothing is applied until it can, the host keeps what it enforces`);
      reopenFailure = msg;
      return 'unusable';
    }
  };
  const lastFailure = new Map<string, string>();
  const withAgent = opts.agent ?? !opts.enforcers;
  const enforcers = opts.enforcers ?? (await loadEnforcers(['server']));
  // server-placed watchers get the store; agent-placed ones the in-process agent (hostPort), exactly
  // what they get in `ipvisor agent` (watchers given by a caller get both)
  const placed: Array<{ w: DaemonWatcher; store: boolean; host: boolean }> = opts.watchers
    ? opts.watchers.map((w) => ({ w, store: true, host: true }))
    : [...(await loadWatchers(['server'])).map((w) => ({ w, store: true, host: false })), ...(withAgent ? await loadWatchers(['agent']) : []).map((w) => ({ w, store: false, host: true }))];
  const watchers = placed.map((p) => p.w);
  let agent: import('../agent/agent.js').Agent | undefined;
  let agentDone: Promise<void> | undefined;
  let controlPlane: import('../server/control-plane.js').StoreControlPlane | undefined;
  if (withAgent) {
    const [{ Agent }, { StoreControlPlane }, { openHostState, defaultStateDir }, { thisHost }] = await Promise.all([
      import('../agent/agent.js'),
      import('../server/control-plane.js'),
      import('../agent/state.js'),
      import('../core/host-identity.js'),
    ]);
    controlPlane = new StoreControlPlane(held.store, { force: opts.force });
    const local = openHostState(defaultStateDir({ explicit: opts.stateDir, storePath: (opts.store as { path?: string }).path }));
    agent = new Agent({ host: thisHost(), controlPlane, local, actor, log: (m) => opts.log(m), intervalMs: 0, waitMs: opts.intervalMs ?? 5000 });
    agentDone = agent.run(opts.signal);
    await agent.ready;
  }
  let running = false;
  let again = false;
  let timer: NodeJS.Timeout | undefined;
  let pendingReasons: string[] = [];

  const reconcile = async (reason: string): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        // a replaced store's own record of the last run describes another host state: full verify
        const store = await followReplacement();
        if (store === 'unusable') break;
        const why = store === 'reopened' ? 'store replaced' : reason;
        for (const e of enforcers) {
          try {
            const changes: PlanChange[] = await e.apply({ store: held.store, actor, dryRun: false, log: opts.log, reason: why, force: opts.force });
            if (lastFailure.delete(e.name)) opts.log(`${e.name}: reconcile works again`);
            if (changes.length) {
              countRepairs(changes);
              opts.log(`${e.name}: repaired ${changes.length} change(s) (${why}): ${changes.slice(0, 5).map(formatPlanChange).join('; ')}${changes.length > 5 ? '; ...' : ''}`);
            }
          } catch (err) {
            // the same failure every few seconds is said once (a refused store, a missing tool)
            const msg = err instanceof Error ? err.message : String(err);
            if (lastFailure.get(e.name) !== msg) opts.log(`${e.name}: reconcile failed: ${msg}`);
            lastFailure.set(e.name, msg);
          }
        }
      } while (again && !opts.signal.aborted);
    } finally {
      running = false;
    }
  };

  const requestReconcile = (reason: string): void => {
    // the agent asks the control plane (over held.store) on its own: look for a replaced file first
    if (agent) {
      void followReplacement().then(
        (s) => s !== 'unusable' && agent!.requestReconcile(s === 'reopened' ? 'store replaced' : reason),
        () => undefined,
      );
    }
    if (!enforcers.length) return;
    pendingReasons.push(reason);
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      const why = summariseReasons(pendingReasons);
      pendingReasons = [];
      void reconcile(why);
    }, opts.debounceMs ?? 50);
  };

  await reconcile('start');
  const hostPort = agent?.hostPort();
  for (const { w, store, host } of placed) {
    try {
      await w.start({ store: store ? held.store : undefined, host: host ? hostPort : undefined, actor, requestReconcile, log: (m) => opts.log(`${w.name}: ${m}`), signal: opts.signal });
    } catch (err) {
      opts.log(`${w.name}: not started: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const periodic = setInterval(() => requestReconcile('periodic'), opts.intervalMs ?? 5000);
  opts.log(`serving: ${[...(agent ? ['host'] : []), ...enforcers.map((e) => e.name)].join(', ')}; watchers: ${watchers.map((w) => w.name).join(', ') || 'none'}`);
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(periodic);
  if (timer) clearTimeout(timer);
  for (const w of watchers) await w.stop().catch(() => undefined);
  controlPlane?.close();
  await agentDone;
  while (running) await new Promise((r) => setTimeout(r, 20));
  // the store given is closed by whoever opened it; one serve reopened is serve's
  if (held.current() !== opts.store) await held.current().close().catch(() => undefined);
}
