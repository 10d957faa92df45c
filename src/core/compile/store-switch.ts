// Whether a host may follow the store it is given. A host records which store (identity) its
// enforced state came from; a store with another identity (a different file, a recreated or an
// empty one) must never silently remove what the host enforces. Pure: host apply uses it for this
// machine, the XAPI enforcer per pool (the pool records its origin in pool.other_config).

/** What a host recorded about the store its enforced state came from. */
export interface EnforcedOrigin {
  storeId: string;
  /** Where that store was (for messages). */
  location: string;
  /** When the host first enforced it (ISO time). */
  since: string;
}

export interface StoreSwitchInput<C extends { op: string }> {
  /** null: nothing recorded (first apply on this host, or enforcement torn down / rebooted away). */
  enforcedFrom: EnforcedOrigin | null;
  store: { id: string; location: string };
  /** The changes the plan would make on the host. */
  changes: C[];
  /** --force: the operator accepts the removals. */
  force: boolean;
  /** Whose enforcement, for messages (default: this host; the XAPI enforcer names the pool). */
  subject?: { enforcement: string; enforces: string; keeps: string };
}

export interface StoreSwitchDecision<C> {
  /** Apply the changes as planned. false: apply nothing and keep enforcing what the host has. */
  allow: boolean;
  /** The changes that remove or change what the host enforces (`-` and `~`). */
  removals: C[];
  /** Why this store is not the one the host enforces; null when it is (or nothing was recorded). */
  reason: string | null;
  /** After a successful apply, record `store` as the host's origin. */
  record: boolean;
}

export function decideStoreSwitch<C extends { op: string }>(input: StoreSwitchInput<C>): StoreSwitchDecision<C> {
  const { enforcedFrom, store, changes, force } = input;
  const subject = input.subject ?? { enforcement: "this host's enforcement", enforces: 'the host enforces', keeps: 'the host keeps what it has' };
  const removals = changes.filter((c) => c.op !== '+');
  if (!enforcedFrom) return { allow: true, removals, reason: null, record: true };
  if (enforcedFrom.storeId === store.id) return { allow: true, removals, reason: null, record: false };
  const where = enforcedFrom.location === store.location ? `the store at ${store.location}` : `store ${store.location}`;
  const base =
    `${where} (identity ${store.id}) is not the store ${subject.enforcement} came from ` +
    `(identity ${enforcedFrom.storeId}, ${enforcedFrom.location}, since ${enforcedFrom.since}): it was replaced by a different or recreated one`;
  if (!removals.length) return { allow: true, removals, reason: `${base}; it removes nothing, so it is adopted`, record: true };
  if (force) return { allow: true, removals, reason: `${base}; --force: applying its ${removals.length} removal(s)`, record: true };
  return {
    allow: false,
    removals,
    reason: `${base}; applying it would remove or change ${removals.length} thing(s) ${subject.enforces}, refused without --force (${subject.keeps}; restore the right store, or apply --force)`,
    record: false,
  };
}
