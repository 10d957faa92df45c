// The XAPI enforcer: VIF locking on every connected pool, through plan/apply/status/teardown and
// `serve`. In `serve`, the XAPI watcher keeps one live cache per pool and this enforcer reads it;
// otherwise each run logs in, reads VIF/network/pool records and logs out.
import { withPartialChanges, type Enforcer, type EnforcerContext, type PlanChange } from '../../core/enforcer.js';
import { loadSnapshot } from '../../core/model/snapshot.js';
import type { Store } from '../../core/store/store.js';
import { audit } from '../../core/service/context.js';
import { IpvisorError } from '../../core/model/errors.js';
import { XapiError, type XapiClient } from './client.js';
import { XapiCache, xlist } from './cache.js';
import { connectionClient, listConnections, type XapiConnection } from './connections.js';
import { compileDesiredLocking, compileLockingPlan, normState, type CurrentVif, type VifLockPlan, type VifLockState } from './locking-plan.js';
import { xapiExtra } from './sync.js';

export const APPLIED_KIND = 'xapi-vif-applied';

/** Live pools kept by the serve watcher (connection name -> its client and cache). */
export const livePools = new Map<string, { client: XapiClient; cache: XapiCache }>();
/** Set while the serve watcher runs: reconciles then use live pools only, so an unreachable pool
 * never stalls the other enforcers behind a connect timeout (the watcher reconnects on its own). */
export const watcherState = { active: false };
const skipLogged = new Map<string, number>();

interface PoolView {
  client: XapiClient;
  cache: XapiCache;
  close(): Promise<void>;
}

async function openPool(conn: XapiConnection): Promise<PoolView> {
  const live = livePools.get(conn.name);
  if (live) return { ...live, close: async () => undefined };
  const client = connectionClient(conn);
  const cache = new XapiCache(['pool', 'VIF']);
  try {
    cache.replaceAll('pool', await client.call('pool.get_all_records'));
    cache.replaceAll('VIF', await client.call('VIF.get_all_records'));
  } catch (err) {
    await client.logout();
    throw err;
  }
  return { client, cache, close: () => client.logout() };
}

export function licenceRestricted(cache: XapiCache): boolean {
  return cache.pool?.[1].restrictions?.restrict_vif_locking === 'true';
}

export interface ConnectionPlan {
  connection: XapiConnection;
  plans: VifLockPlan[];
  restricted: boolean;
  warnings: string[];
}

export async function planConnection(store: Store, conn: XapiConnection, pool: PoolView, onlyVifs?: Set<string>): Promise<ConnectionPlan> {
  const snap = await loadSnapshot(store);
  const mine = new Set(snap.vifs.filter((v) => xapiExtra(v)?.connection === conn.name && (!onlyVifs || onlyVifs.has(v.uuid))).map((v) => v.uuid));
  const desired = compileDesiredLocking(snap, mine);
  const current = new Map<string, CurrentVif>();
  for (const [ref, v] of pool.cache.all('VIF')) {
    if (typeof v.uuid !== 'string' || !mine.has(v.uuid)) continue;
    current.set(v.uuid, { ref, mode: String(v.locking_mode ?? 'network_default'), ipv4: xlist(v.ipv4_allowed), ipv6: xlist(v.ipv6_allowed) });
  }
  const applied = new Map<string, VifLockState>();
  for (const d of await store.listDocs<VifLockState>(APPLIED_KIND)) if (mine.has(d.key)) applied.set(d.key, d.value);
  const plans = compileLockingPlan(desired, current, applied, { owner: conn.owner, connection: conn.name });
  const warnings: string[] = [];
  for (const d of desired) if (d.skipped.length) warnings.push(`${d.label}: routed prefix(es) ${d.skipped.join(', ')} cannot be put in an XAPI allow list (plain addresses only)`);
  for (const p of plans) if (p.driftKept) warnings.push(`${p.label} (${conn.name}): foreign change ${p.drift}; not corrected (ipvisor does not own locking on this pool; \`xapi connect --owner\`)`);
  const restricted = licenceRestricted(pool.cache);
  if (restricted && plans.some((p) => p.calls.length)) warnings.push(`pool ${conn.name}: VIF locking is restricted by the licence (restrict_vif_locking); nothing can be enforced`);
  return { connection: conn, plans, restricted, warnings };
}

/** Runs fn per reachable pool. A pool that cannot be reached is logged; with `failUnreachable`
 * (plan/apply from the CLI) the run then fails, after the other pools, instead of reporting
 * "No changes." for locking it never looked at. `unreachable` collects them for status. */
async function forEachConnection<T>(
  ctx: EnforcerContext,
  fn: (conn: XapiConnection, pool: PoolView) => Promise<T[]>,
  opts: { failUnreachable?: boolean; unreachable?: Array<{ connection: string; error: string }> } = {},
): Promise<T[]> {
  const out: T[] = [];
  const failed: Array<{ connection: string; error: string }> = [];
  for (const conn of await listConnections(ctx.store)) {
    let pool: PoolView;
    if (watcherState.active && !livePools.has(conn.name)) {
      const last = skipLogged.get(conn.name) ?? 0;
      if (Date.now() - last > 60_000) {
        skipLogged.set(conn.name, Date.now());
        ctx.log(`xapi ${conn.name}: not connected; locking is enforced again once the event loop reconnects`);
      }
      continue;
    }
    try {
      pool = await openPool(conn);
    } catch (err) {
      ctx.log(`xapi ${conn.name}: ${(err as Error).message}`);
      failed.push({ connection: conn.name, error: (err as Error).message });
      continue;
    }
    try {
      out.push(...(await fn(conn, pool)));
    } finally {
      await pool.close();
    }
  }
  opts.unreachable?.push(...failed);
  // serve (ctx.reason set) logs and retries on its own; a CLI run must not look successful.
  if (failed.length && opts.failUnreachable && !ctx.reason) {
    const f = failed[0]!;
    throw withPartialChanges(new IpvisorError('DRIVER', `xapi ${f.connection}: ${f.error}; VIF locking on that pool was not checked${failed.length > 1 ? ` (and ${failed.length - 1} more pool(s))` : ''}`, { details: { unreachable: failed } }), out as PlanChange[]);
  }
  return out;
}

/** Executes the plans' calls; records what was written. Returns the changes made. */
export async function applyConnectionPlan(store: Store, cp: ConnectionPlan, client: XapiClient, actor: string, log: (m: string) => void): Promise<PlanChange[]> {
  const done: PlanChange[] = [];
  if (cp.restricted) return done;
  for (const p of cp.plans) {
    if (!p.change) {
      if (!p.managed || p.driftKept) continue;
      // Already as wanted: remember it, so a later foreign edit is recognised as drift.
      const d = await store.getDoc<VifLockState>(APPLIED_KIND, p.vifUuid);
      if (!d || JSON.stringify(normState(d.value)) !== JSON.stringify(normState(p.want))) await store.putDoc(APPLIED_KIND, p.vifUuid, normState(p.want));
      continue;
    }
    try {
      for (const c of p.calls) await client.call(c.method, c.ref, c.value);
    } catch (err) {
      if (err instanceof XapiError && err.xapiCode === 'LICENCE_RESTRICTION') {
        log(`xapi ${cp.connection.name}: VIF locking is restricted by the licence (${err.params.join(' ')}); stopped`);
        return done;
      }
      log(`xapi ${cp.connection.name}: ${p.label}: ${(err as Error).message}`);
      continue;
    }
    await store.transaction(async (tx) => {
      await tx.putDoc(APPLIED_KIND, p.vifUuid, normState(p.want));
      await audit(tx, { actor, action: actor === 'serve' ? 'xapi.repair' : 'xapi.apply', kind: 'vif', uuid: p.vifUuid, name: p.label, after: { ...p.want, connection: cp.connection.name, drift: p.drift } });
    }, { write: true });
    done.push(p.change);
  }
  return done;
}

export const xapiEnforcer: Enforcer = {
  name: 'xapi',
  async plan(ctx) {
    return forEachConnection(ctx, async (conn, pool) => {
      const cp = await planConnection(ctx.store, conn, pool);
      for (const w of cp.warnings) ctx.log(`warning: ${w}`);
      // Under the licence restriction apply writes nothing, so plan shows nothing (the warning says why).
      if (cp.restricted) return [];
      return cp.plans.flatMap((p) => (p.change ? [p.change] : []));
    }, { failUnreachable: true });
  },
  async apply(ctx) {
    return forEachConnection(ctx, async (conn, pool) => {
      const cp = await planConnection(ctx.store, conn, pool);
      for (const w of cp.warnings) ctx.log(`warning: ${w}`);
      if (ctx.dryRun) return cp.restricted ? [] : cp.plans.flatMap((p) => (p.change ? [p.change] : []));
      return applyConnectionPlan(ctx.store, cp, pool.client, ctx.actor, ctx.log);
    }, { failUnreachable: true });
  },
  async status(ctx) {
    const unreachable: Array<{ connection: string; error: string }> = [];
    const pools = await forEachConnection(ctx, async (conn, pool) => {
      const cp = await planConnection(ctx.store, conn, pool);
      return [
        {
          connection: conn.name,
          owner: conn.owner,
          licenceRestricted: cp.restricted,
          // What XAPI holds now (a lock ipvisor leaves alone shows as it is); `pending` says what apply would change.
          vifs: cp.plans.map((p) => ({ vif: p.label, vifUuid: p.vifUuid, locking: p.current.mode, ipv4: p.current.ipv4, ipv6: p.current.ipv6, managed: p.managed, pending: p.change?.detail ?? null, drift: p.drift })),
          warnings: cp.warnings,
        },
      ];
    }, { unreachable });
    return { pools, unreachable };
  },
  async teardown(ctx) {
    // Gives every VIF ipvisor wrote back to XAPI's defaults: mode first, then the lists.
    return forEachConnection(ctx, async (conn, pool) => {
      const changes: PlanChange[] = [];
      const applied = new Map((await ctx.store.listDocs<VifLockState>(APPLIED_KIND)).map((d) => [d.key, d.value]));
      for (const [ref, v] of pool.cache.all('VIF')) {
        if (!applied.has(v.uuid)) continue;
        const change: PlanChange = { op: '-', kind: 'xapi-vif', target: `${v.uuid} (${conn.name})`, detail: 'locking -> network_default, allow lists emptied' };
        if (!ctx.dryRun) {
          try {
            await pool.client.call('VIF.set_locking_mode', ref, 'network_default');
            await pool.client.call('VIF.set_ipv4_allowed', ref, []);
            await pool.client.call('VIF.set_ipv6_allowed', ref, []);
            await ctx.store.deleteDoc(APPLIED_KIND, v.uuid);
          } catch (err) {
            ctx.log(`xapi ${conn.name}: ${v.uuid}: ${(err as Error).message}`);
            continue;
          }
        }
        changes.push(change);
      }
      return changes;
    });
  },
};
