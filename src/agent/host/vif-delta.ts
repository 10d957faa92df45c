// Which VIFs a change of a host's desired state touches, when it touches nothing but VIFs and their
// addresses: an agent then applies only those VIFs' elements (apply.ts's one-VIF path) instead of
// observing the whole host. Pure. Unchanged records are usually the same objects (a state patched in
// memory), so the walk compares identities first and contents only where they differ.
import type { HostDesired } from '../../core/compile/host-desired.js';
import type { Assignment, Vif } from '../../core/model/types.js';

/** More VIFs than this in one change: the full path (one observe) is as cheap and simpler. */
export const MAX_FAST_VIFS = 64;

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null && JSON.stringify(a) === JSON.stringify(b));
}

function sameRecord(a: object, b: object): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function sameList<T extends object>(a: T[] | undefined, b: T[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x === y || (x.length === y.length && x.every((r, i) => sameRecord(r, y[i])));
}

/** Calls onChange(old, next) for every record added, removed or changed, matched by uuid. */
function walk<T extends { uuid: string }>(a: T[], b: T[], onChange: (old: T | undefined, next: T | undefined) => boolean): boolean {
  const n = Math.min(a.length, b.length);
  let i = 0;
  // in step while both lists hold the same records in the same order (the usual case)
  for (; i < n && a[i].uuid === b[i].uuid; i++) if (a[i] !== b[i] && !sameRecord(a[i], b[i]) && !onChange(a[i], b[i])) return false;
  if (i === a.length && i === b.length) return true;
  const rest = new Map<string, T>();
  for (let j = i; j < a.length; j++) rest.set(a[j].uuid, a[j]);
  for (let j = i; j < b.length; j++) {
    const old = rest.get(b[j].uuid);
    rest.delete(b[j].uuid);
    if ((!old || (old !== b[j] && !sameRecord(old, b[j]))) && !onChange(old, b[j])) return false;
  }
  for (const old of rest.values()) if (!onChange(old, undefined)) return false;
  return true;
}

/**
 * The VIFs whose elements may differ between two desired states of one host, or null when the
 * change is more than VIFs and their own addresses (networks, pools, host settings, reservations,
 * routed addresses, quarantined taps, or too many VIFs): then the whole host is applied.
 */
export function changedVifs(old: HostDesired, next: HostDesired): string[] | null {
  if (old.host !== next.host || !sameValue(old.settings, next.settings)) return null;
  const a = old.snapshot;
  const b = next.snapshot;
  if (!sameList(a.networks, b.networks) || !sameList(a.pools, b.pools) || !sameList(a.quarantinedTaps, b.quarantinedTaps)) return null;
  const touched = new Set<string>();
  const vms = new Set<string>();
  const routedPools = new Set(b.pools.filter((p) => p.purpose === 'routed').map((p) => p.uuid));
  const plain = (x: Assignment | undefined) => !x || (x.vifUuid !== null && x.kind !== 'reserved' && x.kind !== 'routed' && !routedPools.has(x.poolUuid));
  const within = () => touched.size + vms.size <= MAX_FAST_VIFS;
  if (!walk(a.vms, b.vms, (o, n) => (vms.add((o ?? n)!.uuid), within()))) return null;
  if (!walk<Vif>(a.vifs, b.vifs, (o, n) => (touched.add((o ?? n)!.uuid), within()))) return null;
  const ok = walk<Assignment>(a.assignments, b.assignments, (o, n) => {
    if (!plain(o) || !plain(n)) return false;
    if (o?.vifUuid) touched.add(o.vifUuid);
    if (n?.vifUuid) touched.add(n.vifUuid);
    return within();
  });
  if (!ok) return null;
  // a VM that changed (moved to another host, renamed): its VIFs, in either state
  if (vms.size) for (const v of [...a.vifs, ...b.vifs]) if (vms.has(v.vmUuid)) touched.add(v.uuid);
  return touched.size <= MAX_FAST_VIFS ? [...touched] : null;
}
