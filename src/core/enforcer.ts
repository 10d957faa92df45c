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

/** Runs plan, apply or teardown of every enforcer in turn; each change names its enforcer. */
export async function runEnforcers(enforcers: Enforcer[], ctx: EnforcerContext, what: 'plan' | 'apply' | 'teardown'): Promise<Array<PlanChange & { enforcer: string }>> {
  const all: Array<PlanChange & { enforcer: string }> = [];
  for (const e of enforcers) {
    const fn = what === 'plan' ? e.plan : what === 'apply' ? e.apply : e.teardown;
    if (!fn) continue;
    const changes = await fn.call(e, ctx);
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
