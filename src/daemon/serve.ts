// `ipvisor serve`: apply on start, then re-verify periodically and whenever a watcher reports a
// change (nft monitor, libvirt/XAPI events). Requests in a burst are coalesced into one reconcile;
// every repair is logged by the enforcers as an audit event with actor 'serve'.
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
}

/** The reasons of a coalesced burst, for the log: `nft flush ruleset` alone is ~70 nft events. */
export function summariseReasons(reasons: string[], max = 3): string {
  const unique = [...new Set(reasons)];
  return unique.length <= max ? unique.join(', ') : `${unique.slice(0, max).join(', ')} and ${unique.length - max} more`;
}

export async function serve(opts: ServeOptions): Promise<void> {
  const actor = opts.actor ?? 'serve';
  const enforcers = opts.enforcers ?? (await loadEnforcers());
  const watchers = opts.watchers ?? (await loadWatchers());
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
  opts.log(`serving: ${enforcers.map((e) => e.name).join(', ')}; watchers: ${watchers.map((w) => w.name).join(', ') || 'none'}`);
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) resolve();
    opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(periodic);
  if (timer) clearTimeout(timer);
  for (const w of watchers) await w.stop().catch(() => undefined);
  while (running) await new Promise((r) => setTimeout(r, 20));
}
