// Pure: store intent + XAPI's current VIF state + what ipvisor last wrote -> the XAPI calls to make.
// Each VIF gets its effective locking mode written explicitly (XAPI's network default knows only
// unlocked|disabled) and its allowed IPv4/IPv6 lists, in the safe order: allow lists first, then
// `locked`; when unlocking or disabling, the mode first, then the lists.
// Ownership: ipvisor writes when its own intent changed, or when it never wrote this VIF and has
// something to say about it. A difference it did not cause (someone edited the VIF in Xen
// Orchestra) is drift: reported, and corrected only when the connection says ipvisor owns locking.
import { effectiveLocking } from '../../core/model/locking.js';
import type { Snapshot } from '../../core/model/snapshot.js';
import type { LockingMode } from '../../core/model/types.js';
import type { PlanChange } from '../../core/enforcer.js';

export interface VifLockState {
  mode: string;
  ipv4: string[];
  ipv6: string[];
}

export interface CurrentVif extends VifLockState {
  ref: string;
}

export interface DesiredVif extends VifLockState {
  vifUuid: string;
  label: string;
  mode: LockingMode;
  /** ipvisor has something to say about this VIF (addresses, an explicit mode, a non-default network mode). */
  managed: boolean;
  /** Routed prefixes that an allow list (plain IPs) cannot express. */
  skipped: string[];
}

export type LockingCall =
  | { method: 'VIF.set_ipv4_allowed' | 'VIF.set_ipv6_allowed'; ref: string; value: string[] }
  | { method: 'VIF.set_locking_mode'; ref: string; value: string };

export interface VifLockPlan {
  vifUuid: string;
  label: string;
  want: VifLockState;
  /** What XAPI holds now. */
  current: VifLockState;
  /** ipvisor manages this VIF (it wrote it, or has intent for it, or owns the pool). */
  managed: boolean;
  calls: LockingCall[];
  change: PlanChange | null;
  /** A foreign change ipvisor did not make, e.g. "ipv4 [10.0.0.5] -> [10.0.0.5, 10.0.0.9]". */
  drift: string | null;
  /** The drift is left alone (the connection is not the owner). */
  driftKept: boolean;
}

const sorted = (xs: string[]): string[] => [...new Set(xs)].sort();
export const normState = (s: VifLockState): VifLockState => ({ mode: s.mode, ipv4: sorted(s.ipv4), ipv6: sorted(s.ipv6) });
const same = (a: VifLockState, b: VifLockState): boolean => JSON.stringify(normState(a)) === JSON.stringify(normState(b));

/** The desired XAPI locking state of every VIF in `vifUuids` (those of one connection). */
export function compileDesiredLocking(snap: Snapshot, vifUuids: Set<string>): DesiredVif[] {
  const nets = new Map(snap.networks.map((n) => [n.uuid, n]));
  const vms = new Map(snap.vms.map((v) => [v.uuid, v]));
  const byVif = new Map<string, typeof snap.assignments>();
  for (const a of snap.assignments) {
    if (!a.vifUuid || !vifUuids.has(a.vifUuid)) continue;
    const list = byVif.get(a.vifUuid) ?? [];
    list.push(a);
    byVif.set(a.vifUuid, list);
  }
  const out: DesiredVif[] = [];
  for (const vif of snap.vifs) {
    if (!vifUuids.has(vif.uuid)) continue;
    const net = nets.get(vif.networkUuid);
    if (!net) continue;
    const held = byVif.get(vif.uuid) ?? [];
    const single = held.filter((a) => a.prefixLength === (a.family === 4 ? 32 : 128));
    const skipped = held.filter((a) => !single.includes(a)).map((a) => `${a.address}/${a.prefixLength}`);
    const mode = effectiveLocking(vif, net, held.length);
    out.push({
      vifUuid: vif.uuid,
      label: `${vms.get(vif.vmUuid)?.name ?? vif.vmUuid}:${vif.device}`,
      mode,
      ipv4: sorted(single.filter((a) => a.family === 4).map((a) => a.address)),
      ipv6: sorted(single.filter((a) => a.family === 6).map((a) => a.address)),
      managed: held.length > 0 || vif.locking !== 'network_default' || net.defaultLocking !== 'unlocked',
      skipped,
    });
  }
  return out;
}

function describe(from: VifLockState, to: VifLockState): string {
  const parts: string[] = [];
  if (from.mode !== to.mode) parts.push(`locking ${from.mode} -> ${to.mode}`);
  const list = (xs: string[]): string => `[${xs.join(', ')}]`;
  if (JSON.stringify(sorted(from.ipv4)) !== JSON.stringify(sorted(to.ipv4))) parts.push(`ipv4 ${list(sorted(from.ipv4))} -> ${list(sorted(to.ipv4))}`);
  if (JSON.stringify(sorted(from.ipv6)) !== JSON.stringify(sorted(to.ipv6))) parts.push(`ipv6 ${list(sorted(from.ipv6))} -> ${list(sorted(to.ipv6))}`);
  return parts.join(', ');
}

/** The calls that take a VIF from `cur` to `want`, in the safe order. */
export function lockingCalls(ref: string, cur: VifLockState, want: VifLockState): LockingCall[] {
  const lists: LockingCall[] = [];
  if (JSON.stringify(sorted(cur.ipv4)) !== JSON.stringify(sorted(want.ipv4))) lists.push({ method: 'VIF.set_ipv4_allowed', ref, value: sorted(want.ipv4) });
  if (JSON.stringify(sorted(cur.ipv6)) !== JSON.stringify(sorted(want.ipv6))) lists.push({ method: 'VIF.set_ipv6_allowed', ref, value: sorted(want.ipv6) });
  const mode: LockingCall[] = cur.mode !== want.mode ? [{ method: 'VIF.set_locking_mode', ref, value: want.mode }] : [];
  return want.mode === 'locked' ? [...lists, ...mode] : [...mode, ...lists];
}

export function compileLockingPlan(
  desired: DesiredVif[],
  current: Map<string, CurrentVif>,
  applied: Map<string, VifLockState>,
  opts: { owner: boolean; connection: string },
): VifLockPlan[] {
  const plans: VifLockPlan[] = [];
  for (const d of desired) {
    const cur = current.get(d.vifUuid);
    if (!cur) continue;
    const want: VifLockState = { mode: d.mode, ipv4: d.ipv4, ipv6: d.ipv6 };
    const last = applied.get(d.vifUuid);
    const drift = last && !same(cur, last) ? describe(last, cur) : null;
    let write: boolean;
    if (same(cur, want)) write = false;
    else if (!last) write = d.managed || opts.owner;
    else if (!same(last, want)) write = true; // ipvisor's intent changed: it wins
    else write = opts.owner; // only a foreign change: corrected by the owner only
    const calls = write ? lockingCalls(cur.ref, cur, want) : [];
    plans.push({
      vifUuid: d.vifUuid,
      label: d.label,
      want,
      current: normState(cur),
      managed: d.managed || opts.owner || !!last,
      calls,
      drift,
      driftKept: !!drift && !write,
      change: calls.length
        ? { op: '~', kind: 'xapi-vif', target: `${d.label} (${opts.connection})`, detail: `${describe(cur, want)}${drift ? '; corrects a foreign change' : ''}` }
        : null,
    });
  }
  return plans;
}
