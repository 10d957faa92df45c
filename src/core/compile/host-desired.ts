// The desired state of one hypervisor host: the part of the store that host enforces (pure). The
// control plane computes it per host and hands it to that host's agent; the agent keeps it on disk
// and enforces it with or without the control plane. What goes in:
//   - every network (a network's host addresses go on every host where its bridge exists; the
//     compiler skips bridges the host does not have),
//   - the VMs that run on the host, their VIFs and those VIFs' assignments,
//   - assignments without a VIF (reservations; routed prefixes reserved for a network),
//   - the host's own settings (its default route, narrowed addresses).
import { createHash } from 'node:crypto';
import type { Snapshot } from '../model/snapshot.js';
import type { HostSettings } from './host-plan.js';

export interface HostDesired {
  host: string;
  snapshot: Snapshot;
  settings: HostSettings;
}

/** Settings documents (store `docs`, kind host-setting) are per host: `gateway@NAME`. */
export const DOC_HOST_SETTING = 'host-setting';

export function hostSettingKey(name: 'gateway' | 'narrow', host: string): string {
  return `${name}@${host}`;
}

export function hostSnapshot(snapshot: Snapshot, host: string): Snapshot {
  const vms = snapshot.vms.filter((v) => v.host === host);
  const vmUuids = new Set(vms.map((v) => v.uuid));
  const vifs = snapshot.vifs.filter((v) => vmUuids.has(v.vmUuid));
  const vifUuids = new Set(vifs.map((v) => v.uuid));
  const assignments = snapshot.assignments.filter((a) => (a.vifUuid ? vifUuids.has(a.vifUuid) : true));
  const quarantinedTaps = (snapshot.quarantinedTaps ?? []).filter((q) => q.host === host);
  return { networks: snapshot.networks, pools: snapshot.pools, vms, vifs, assignments, ...(quarantinedTaps.length ? { quarantinedTaps } : {}) };
}

/** Canonical digest of a host's desired state: equal digests, nothing for the agent to do. */
export function desiredDigest(d: HostDesired): string {
  const byUuid = <T extends { uuid: string }>(l: T[]) => [...l].sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
  const s = d.snapshot;
  const canon = {
    host: d.host,
    settings: { gateway: d.settings.gateway ?? null, narrow: d.settings.narrow ?? [] },
    networks: byUuid(s.networks),
    pools: byUuid(s.pools),
    vms: byUuid(s.vms),
    vifs: byUuid(s.vifs),
    assignments: byUuid(s.assignments),
    // taps disabled because their facts could not be recorded (only when there are any, so the
    // digest of every other state stays what it was)
    ...(s.quarantinedTaps?.length ? { quarantinedTaps: [...s.quarantinedTaps].sort((a, b) => (a.ifname < b.ifname ? -1 : a.ifname > b.ifname ? 1 : 0)) } : {}),
  };
  return createHash('sha256')
    .update(JSON.stringify(canon, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
    .digest('hex');
}
