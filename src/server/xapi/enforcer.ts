// The XAPI enforcer: VIF locking on every connected pool, through plan/apply/status/teardown and
// `serve`. In `serve`, the XAPI watcher keeps one live cache per pool and this enforcer reads it;
// otherwise each run logs in, reads VIF/network/pool records and logs out.
// Fail closed across stores: each pool records in its other_config which store (identity) its
// locking came from; a store with another identity never unlocks or changes what the pool
// enforces without --force (the one decision of core/compile/store-switch.ts, as for the host).
import { formatPlanChange, withPartialChanges, type Enforcer, type EnforcerContext, type PlanChange } from '../../core/enforcer.js';
import { decideStoreSwitch, type EnforcedOrigin, type StoreSwitchDecision } from '../../core/compile/store-switch.js';
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
/** pool.other_config key holding the origin (JSON EnforcedOrigin) of the pool's locking. */
export const ORIGIN_KEY = 'ipvisor:store';

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
  const cache = new XapiCache(['pool', 'VIF', 'network']);
  try {
    cache.replaceAll('pool', await client.call('pool.get_all_records'));
    cache.replaceAll('VIF', await client.call('VIF.get_all_records'));
    cache.replaceAll('network', await client.call('network.get_all_records'));
  } catch (err) {
    await client.logout();
    throw err;
  }
  return { client, cache, close: () => client.logout() };
}

export function licenceRestricted(cache: XapiCache): boolean {
  return cache.pool?.[1].restrictions?.restrict_vif_locking === 'true';
}

/** The store the pool's locking came from, as recorded in pool.other_config; null when none is
 * recorded or the record is unreadable (then the next apply records its store, as on the host). */
export function poolOrigin(cache: XapiCache): EnforcedOrigin | null {
  const raw = cache.pool?.[1].other_config?.[ORIGIN_KEY];
  if (typeof raw !== 'string') return null;
  try {
    const v = JSON.parse(raw) as Partial<EnforcedOrigin>;
    return typeof v.storeId === 'string' && typeof v.location === 'string' && typeof v.since === 'string' ? { storeId: v.storeId, location: v.location, since: v.since } : null;
  } catch {
    return null;
  }
}

/** What a VIF enforces now: XAPI's network_default means the network's default (unlocked or disabled). */
function effectiveXapiMode(cache: XapiCache, vifRef: string, mode: string): string {
  if (mode !== 'network_default') return mode;
  const net = cache.get('network', cache.get('VIF', vifRef)?.network);
  return String(net?.default_locking_mode ?? 'unlocked');
}

export interface ConnectionPlan {
  connection: XapiConnection;
  plans: VifLockPlan[];
  restricted: boolean;
  warnings: string[];
  /** May this store change the pool's locking (another store's locking is not removed without --force). */
  decision: StoreSwitchDecision<PlanChange>;
  identity: { id: string; location: string };
}

export async function planConnection(store: Store, conn: XapiConnection, pool: PoolView, onlyVifs?: Set<string>, opts: { force?: boolean } = {}): Promise<ConnectionPlan> {
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
  // A change to a VIF that enforces nothing now (effectively unlocked) only adds; any other change
  // removes or loosens what the pool enforces and counts as a removal.
  const changes = plans.flatMap((p) => (p.change ? [{ ...p.change, op: effectiveXapiMode(pool.cache, current.get(p.vifUuid)!.ref, p.current.mode) === 'unlocked' ? ('+' as const) : p.change.op }] : []));
  const identity = await store.identity();
  const decision = decideStoreSwitch({
    enforcedFrom: poolOrigin(pool.cache),
    store: identity,
    changes,
    force: !!opts.force,
    subject: { enforcement: `XAPI pool ${conn.name}'s locking`, enforces: `pool ${conn.name} enforces`, keeps: 'the pool keeps its locking' },
  });
  if (decision.reason) warnings.push(decision.reason);
  return { connection: conn, plans, restricted, warnings, decision, identity };
}

/** Records (after an apply) which store the pool's locking comes from: remove_from + add_to, the
 * usual way to set one key of an XAPI map without overwriting the others'. */
async function recordPoolOrigin(pool: Pick<PoolView, 'client' | 'cache'>, identity: { id: string; location: string }): Promise<void> {
  const entry = pool.cache.pool;
  if (!entry) return;
  const [ref, rec] = entry;
  const value = JSON.stringify({ storeId: identity.id, location: identity.location, since: new Date().toISOString() } satisfies EnforcedOrigin);
  await pool.client.call('pool.remove_from_other_config', ref, ORIGIN_KEY);
  await pool.client.call('pool.add_to_other_config', ref, ORIGIN_KEY, value);
  // the live cache sees the event later: the next reconcile must not record again meanwhile
  rec.other_config = { ...(rec.other_config ?? {}), [ORIGIN_KEY]: value };
}

async function clearPoolOrigin(pool: PoolView): Promise<void> {
  const entry = pool.cache.pool;
  if (!entry || entry[1].other_config?.[ORIGIN_KEY] === undefined) return;
  await pool.client.call('pool.remove_from_other_config', entry[0], ORIGIN_KEY);
  const { [ORIGIN_KEY]: _gone, ...rest } = entry[1].other_config ?? {};
  entry[1].other_config = rest;
}

function refusal(refused: ConnectionPlan[], done: PlanChange[]): Error {
  const first = refused[0]!;
  const shown = first.decision.removals.slice(0, 5).map(formatPlanChange).join('; ');
  const more = first.decision.removals.length > 5 ? `; ... ${first.decision.removals.length - 5} more (ipvisor plan lists them)` : '';
  const others = refused.length > 1 ? ` (and ${refused.length - 1} more pool(s): ${refused.slice(1).map((c) => c.connection.name).join(', ')})` : '';
  return withPartialChanges(
    new IpvisorError('STORE_IDENTITY', `xapi ${first.connection.name}: ${first.decision.reason}. Removals: ${shown}${more}${others}`, {
      details: { store: first.identity, pools: refused.map((c) => ({ connection: c.connection.name, removals: c.decision.removals })) },
    }),
    done,
  );
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

/** Executes the plans' calls; records what was written, and which store the pool's locking now
 * comes from. Returns the changes made. Refuses (STORE_IDENTITY) what the decision refuses. */
export async function applyConnectionPlan(store: Store, cp: ConnectionPlan, pool: Pick<PoolView, 'client' | 'cache'>, actor: string, log: (m: string) => void): Promise<PlanChange[]> {
  const done: PlanChange[] = [];
  if (!cp.decision.allow) throw refusal([cp], done);
  if (cp.restricted) return done;
  const client = pool.client;
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
  if (cp.decision.record && cp.plans.some((p) => p.managed)) {
    await recordPoolOrigin(pool, cp.identity).catch((err: Error) =>
      log(`xapi ${cp.connection.name}: could not record this store's identity in the pool's other_config (${err.message}); a store with another identity is not stopped from changing this pool's locking`),
    );
  }
  return done;
}

export const xapiEnforcer: Enforcer = {
  name: 'xapi',
  async plan(ctx) {
    return forEachConnection(ctx, async (conn, pool) => {
      const cp = await planConnection(ctx.store, conn, pool, undefined, { force: ctx.force });
      for (const w of cp.warnings) ctx.log(`warning: ${w}`);
      // Under the licence restriction apply writes nothing, so plan shows nothing (the warning says why).
      if (cp.restricted) return [];
      return cp.plans.flatMap((p) => (p.change ? [p.change] : []));
    }, { failUnreachable: true });
  },
  async apply(ctx) {
    // a pool whose locking came from another store is left as it is; the other pools still apply
    const refused: ConnectionPlan[] = [];
    const done = await forEachConnection(ctx, async (conn, pool) => {
      const cp = await planConnection(ctx.store, conn, pool, undefined, { force: ctx.force });
      for (const w of cp.warnings) {
        // a refusal is the run's error (serve says a repeated one once), not a warning each time
        if (w === cp.decision.reason && !cp.decision.allow && !ctx.dryRun) continue;
        ctx.log(`warning: ${w}`);
      }
      if (ctx.dryRun) return cp.restricted ? [] : cp.plans.flatMap((p) => (p.change ? [p.change] : []));
      if (!cp.decision.allow) {
        refused.push(cp);
        return [];
      }
      return applyConnectionPlan(ctx.store, cp, pool, ctx.actor, ctx.log);
    }, { failUnreachable: true });
    if (refused.length && !ctx.dryRun) throw refusal(refused, done);
    return done;
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
          // which store the pool's locking came from (pool.other_config), and a refusal to change it
          enforcedStore: poolOrigin(pool.cache),
          refused: cp.decision.allow ? null : cp.decision.reason,
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
      let failed = false;
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
            failed = true;
            continue;
          }
        }
        changes.push(change);
      }
      // the pool's record of this store goes with the last lock it wrote (another store's stays)
      const origin = poolOrigin(pool.cache);
      if (!ctx.dryRun && !failed && origin && origin.storeId === (await ctx.store.identity()).id) {
        await clearPoolOrigin(pool).catch((err: Error) => ctx.log(`xapi ${conn.name}: could not remove ${ORIGIN_KEY} from the pool's other_config: ${err.message}`));
      }
      return changes;
    });
  },
};
