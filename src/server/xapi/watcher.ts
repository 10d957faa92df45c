// `ipvisor serve`: one live event.from loop per XAPI connection. Each batch updates the store (sync)
// and the pool's cache; a change to VIFs, VMs, networks or the pool asks for a reconcile, so the
// XAPI enforcer (reading the same live cache) re-checks locking and repairs foreign changes.
import { needStore, type DaemonContext, type DaemonWatcher } from '../../core/watcher.js';
import { connectionClient, listConnections, type XapiConnection } from './connections.js';
import { livePools, watcherState } from './enforcer.js';
import { XapiPoolSync } from './sync.js';
import type { CacheChange, XapiCache } from './cache.js';
import { requestGuestPush } from '../../core/guest/push-port.js';

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/** Pure: the UUIDs of the VMs a batch plugged a VIF into or unplugged one from (their guests get a push now). */
export function vifPlugs(cache: Pick<XapiCache, 'get'>, changes: CacheChange[]): string[] {
  const out = new Set<string>();
  for (const c of changes) {
    if (c.cls !== 'VIF') continue;
    const was = c.before?.currently_attached === true;
    const is = c.after?.currently_attached === true;
    if (was === is) continue;
    const vmRef = (c.after ?? c.before)?.VM;
    const vm = typeof vmRef === 'string' ? cache.get('VM', vmRef) : undefined;
    if (typeof vm?.uuid === 'string') out.add(vm.uuid);
  }
  return [...out];
}

export interface XapiWatcherOptions {
  /** event.from timeout (s). */
  eventTimeout?: number;
  retryDelayMs?: number;
}

export function createXapiWatcher(opts: XapiWatcherOptions = {}): DaemonWatcher {
  const ac = new AbortController();
  const loops: Promise<void>[] = [];

  async function follow(ctx: DaemonContext, conn: XapiConnection, signal: AbortSignal): Promise<void> {
    let current: XapiPoolSync | undefined;
    // Stopping logs out at once, which also ends a pending event.from (its socket is destroyed).
    signal.addEventListener('abort', () => void current?.client.logout(), { once: true });
    while (!signal.aborted) {
      let syncer: XapiPoolSync | undefined;
      try {
        const client = connectionClient(conn);
        syncer = current = new XapiPoolSync(needStore(ctx, 'xapi'), conn, client, ctx.log);
        const first = await syncer.full();
        livePools.set(conn.name, { client, cache: syncer.cache });
        ctx.log(`${conn.name}: following events (${first.created.length} created, ${first.deleted.length} deleted)`);
        if (first.errors.length) ctx.log(`${conn.name}: sync errors: ${first.errors.join('; ')}`);
        ctx.requestReconcile(`xapi ${conn.name} synced`);
        while (!signal.aborted) {
          const { changes, report } = await syncer.step(opts.eventTimeout ?? 30);
          if (report?.errors.length) ctx.log(`${conn.name}: sync errors: ${report.errors.join('; ')}`);
          for (const vm of vifPlugs(syncer.cache, changes)) requestGuestPush(vm);
          if (changes.some((c) => c.cls === 'VIF' || c.cls === 'VM' || c.cls === 'network' || c.cls === 'pool') || report) {
            ctx.requestReconcile(`xapi ${conn.name} event`);
          }
        }
      } catch (err) {
        if (signal.aborted) break;
        ctx.log(`${conn.name}: ${(err as Error).message}; reconnecting`);
      } finally {
        livePools.delete(conn.name);
        await syncer?.client.logout();
      }
      await sleep(opts.retryDelayMs ?? 5000, signal);
    }
  }

  return {
    name: 'xapi',
    async start(ctx) {
      const conns = await listConnections(needStore(ctx, 'xapi'));
      watcherState.active = conns.length > 0;
      // Stops with serve (ctx.signal) or stop() (ac).
      if (ctx.signal.aborted) ac.abort();
      else ctx.signal.addEventListener('abort', () => ac.abort(), { once: true });
      const signal = ac.signal;
      for (const conn of conns) loops.push(follow(ctx, conn, signal));
    },
    async stop() {
      ac.abort();
      await Promise.all(loops);
      watcherState.active = false;
    },
  };
}
