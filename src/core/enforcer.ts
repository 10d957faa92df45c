// The enforcement port: every place ipvisor pushes the store's intent onto something real (this
// host's nftables/iproute2, XAPI) is one Enforcer. plan/apply/status/teardown iterate them all.
import type { Store } from './store/store.js';

/** One line of a plan: `+` add, `-` remove, `~` change. */
export interface PlanChange {
  op: '+' | '-' | '~';
  /** What kind of object: 'address', 'route', 'nft-element', 'nft-table', 'sysctl', ... */
  kind: string;
  /** The object, e.g. "10.0.0.1/24 dev br0". */
  target: string;
  detail?: string;
}

export interface EnforcerContext {
  store: Store;
  actor: string;
  dryRun: boolean;
  log(msg: string): void;
  /** Why this run happens (serve: 'start', 'periodic', a watcher's reason). Optional. */
  reason?: string;
  /** Apply even what a store with another identity than the enforced one would remove
   * (core/compile/store-switch.ts); apply --force, serve --force. */
  force?: boolean;
}

export interface Enforcer {
  /** 'host', later 'xapi'. */
  name: string;
  plan(ctx: EnforcerContext): Promise<PlanChange[]>;
  /** Returns what it changed ([] = nothing). */
  apply(ctx: EnforcerContext): Promise<PlanChange[]>;
  status?(ctx: EnforcerContext): Promise<unknown>;
  teardown?(ctx: EnforcerContext): Promise<PlanChange[]>;
}

/** "+ route 203.0.113.5/32 dev br0 (proto ipvisor)" */
export function formatPlanChange(c: PlanChange): string {
  return `${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ''}`;
}

// What an enforcer did before it failed part-way (an XAPI pool unreachable after the others were
// applied): its error carries those changes, so they are still reported.
const partials = new WeakMap<object, PlanChange[]>();

/** Marks `err` as thrown after `changes` were made (or planned); returns it for `throw`. */
export function withPartialChanges<E extends object>(err: E, changes: PlanChange[]): E {
  partials.set(err, changes);
  return err;
}

export interface EnforcerFailure {
  enforcer: string;
  error: unknown;
}

/** Runs plan, apply or teardown of every enforcer in turn; each change names its enforcer. With
 * `failures`, an enforcer's error is collected there and the others still run (one unreachable
 * XAPI pool must not hide or stop this host's changes); without it, the first error is thrown. */
export async function runEnforcers(enforcers: Enforcer[], ctx: EnforcerContext, what: 'plan' | 'apply' | 'teardown', failures?: EnforcerFailure[]): Promise<Array<PlanChange & { enforcer: string }>> {
  const all: Array<PlanChange & { enforcer: string }> = [];
  for (const e of enforcers) {
    const fn = what === 'plan' ? e.plan : what === 'apply' ? e.apply : e.teardown;
    if (!fn) continue;
    let changes: PlanChange[];
    try {
      changes = await fn.call(e, ctx);
    } catch (err) {
      if (!failures) throw err;
      failures.push({ enforcer: e.name, error: err });
      changes = (err !== null && typeof err === 'object' ? partials.get(err) : undefined) ?? [];
    }
    all.push(...changes.map((c) => ({ ...c, enforcer: e.name })));
  }
  return all;
}

/** Every enforcer's status by name (enforcers without one are left out). */
export async function enforcerStatus(enforcers: Enforcer[], ctx: EnforcerContext): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const e of enforcers) if (e.status) out[e.name] = await e.status(ctx);
  return out;
}
