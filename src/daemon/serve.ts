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

export interface ServeOptions {
  store: Store;
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

export async function serve(opts: ServeOptions): Promise<void> {
  const actor = opts.actor ?? 'serve';
  const withAgent = opts.agent ?? !opts.enforcers;
  const enforcers = opts.enforcers ?? (await loadEnforcers(['server']));
  const watchers = opts.watchers ?? (await loadWatchers(withAgent ? ['server', 'agent'] : ['server']));
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
    controlPlane = new StoreControlPlane(opts.store);
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
        for (const e of enforcers) {
          try {
            const changes: PlanChange[] = await e.apply({ store: opts.store, actor, dryRun: false, log: opts.log, reason });
            if (changes.length) {
              opts.log(`${e.name}: repaired ${changes.length} change(s) (${reason}): ${changes.slice(0, 5).map(formatPlanChange).join('; ')}${changes.length > 5 ? '; ...' : ''}`);
            }
          } catch (err) {
            opts.log(`${e.name}: reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      } while (again && !opts.signal.aborted);
    } finally {
      running = false;
    }
  };

  const requestReconcile = (reason: string): void => {
    agent?.requestReconcile(reason);
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
  for (const w of watchers) {
    try {
      await w.start({ store: opts.store, actor, requestReconcile, log: (m) => opts.log(`${w.name}: ${m}`), signal: opts.signal });
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
}
