// The one port between an agent and the control plane (DESIGN.md "Control plane and agents"). Two
// adapters: in-process (server/control-plane.ts, used by `serve`: one process, no network) and HTTP
// (server/agent-http.ts on the server, agent/http-control-plane.ts in the agent).
import type { HostDesired } from './compile/host-desired.js';
import type { HostSettings } from './compile/host-plan.js';
import type { QuarantinedTap, Snapshot } from './model/snapshot.js';
import type { LibvirtInterfaceInfo } from './model/libvirt.js';
import type { GuestPushRecord } from './guest/push-port.js';

/** The desired state of one host as the control plane sends it. */
export interface DesiredState extends HostDesired {
  /** The identity of the store it was read from (a replaced store has another one). */
  storeIdentity: string;
  /** The store revision it was read at. */
  revision: number;
  /** desiredDigest(): equal digests, nothing changed for this host. */
  digest: string;
  /** Set by the server operator (`ipvisor server --force`): the agent may replace a copy that came
   * from a store with another identity. */
  force?: boolean;
}

/** The object lists of a host's slice that a delta carries changes of (keyed by uuid). */
export const DELTA_LISTS = ['networks', 'pools', 'vms', 'vifs', 'assignments'] as const;
export type DeltaList = (typeof DELTA_LISTS)[number];

/** What changed in one host's slice between the agent's copy (fromRevision) and `revision`. */
export interface DesiredDelta {
  storeIdentity: string;
  /** The revision of the copy it applies to. */
  fromRevision: number;
  revision: number;
  /** The digest the copy has once the delta is applied: anything else, and the agent asks for a snapshot. */
  digest: string;
  force?: boolean;
  /** Objects added or changed, whole. */
  upsert: { [K in DeltaList]?: Snapshot[K] };
  /** Uuids of objects gone from this host's slice (an uuid the copy does not have is no change). */
  remove: { [K in DeltaList]?: string[] };
  /** Small, so always whole: the host's settings and its quarantined taps. */
  settings: HostSettings;
  quarantinedTaps?: QuarantinedTap[];
}

export type DesiredAnswer =
  | { kind: 'snapshot'; state: DesiredState }
  | { kind: 'delta'; delta: DesiredDelta }
  | { kind: 'unchanged'; revision: number; digest: string; storeIdentity: string }
  /** The host was removed on the server: the agent keeps what it enforces until `agent --teardown`. */
  | { kind: 'removed' };

export interface DesiredQuery {
  /** The digest of the agent's copy: when it is still current the answer is 'unchanged'. */
  digest?: string;
  /** The revision and store of the agent's copy: with both, a changed state may come as a delta. */
  revision?: number;
  storeIdentity?: string;
  /** Ask for a snapshot whatever the digest (a delta that did not verify). */
  full?: boolean;
  /** Long-poll: wait up to this long for a change that concerns this host. */
  waitMs?: number;
  signal?: AbortSignal;
}

/** What an agent reports after each reconcile (host show, the API and the UI show it). */
export interface AppliedReport {
  revision: number;
  digest: string;
  storeIdentity: string;
  ok: boolean;
  error?: string;
  /** Changes the last reconcile made (drift repaired or new desired state applied). */
  changes: number;
  /** Pending differences after the reconcile (empty: in sync). */
  drift: string[];
  warnings: string[];
  /** The agent refuses a desired state from a store with another identity (no --force on the server). */
  refused?: string;
  agentVersion: string;
  at: string;
}

/** One interface of a domain as libvirt shows it, as the agent's libvirt watcher reports it. */
export type DomainInterfaceFact = LibvirtInterfaceInfo;

/** The last auto-push of a VM's network configuration into its guest, as the agent reports it. */
export type GuestPushFact = GuestPushRecord;

/** Facts an agent reports: what it applied (audit), interfaces its hooks bound, domains its libvirt
 * event watcher saw (started, a NIC hot-plugged or removed, a rescan after a libvirtd restart), and
 * its guest pushes. Every one names its host; the control plane takes them only from that host's
 * agent (parseHostFact in core/model/validate.ts checks them). */
export type HostFact =
  | { kind: 'audit'; host: string; time: string; actor: string; action: string; changes: string[] }
  | { kind: 'vif-bind'; host: string; time: string; vmUuid: string; mac: string; ifname: string | null }
  | { kind: 'domain'; host: string; time: string; state: 'running' | 'stopped'; domain: { uuid: string; name: string; interfaces: DomainInterfaceFact[] } }
  | { kind: 'guest-push'; host: string; time: string; vmUuid: string; record: GuestPushFact };

/** The copy with a delta applied (pure; the copy is not modified). The caller checks the result's
 * digest against delta.digest with desiredDigest() before it enforces anything. */
export function applyDelta(copy: DesiredState, delta: DesiredDelta): DesiredState {
  const snapshot: Snapshot = { ...copy.snapshot };
  for (const list of DELTA_LISTS) {
    const up = delta.upsert[list] ?? [];
    const gone = new Set(delta.remove[list] ?? []);
    if (!up.length && !gone.size) continue;
    const byUuid = new Map<string, { uuid: string }>((copy.snapshot[list] as Array<{ uuid: string }>).map((o) => [o.uuid, o]));
    for (const uuid of gone) byUuid.delete(uuid);
    for (const o of up as Array<{ uuid: string }>) byUuid.set(o.uuid, o);
    (snapshot as unknown as Record<DeltaList, unknown[]>)[list] = [...byUuid.values()];
  }
  if (delta.quarantinedTaps?.length) snapshot.quarantinedTaps = delta.quarantinedTaps;
  else delete snapshot.quarantinedTaps;
  return {
    host: copy.host,
    snapshot,
    settings: delta.settings,
    storeIdentity: delta.storeIdentity,
    revision: delta.revision,
    digest: delta.digest,
    ...(delta.force ? { force: true } : {}),
  };
}

export interface ControlPlane {
  desiredState(host: string, q?: DesiredQuery): Promise<DesiredAnswer>;
  reportApplied(host: string, report: AppliedReport): Promise<void>;
  reportFacts(host: string, facts: HostFact[]): Promise<void>;
}

/** Protocol version of the agent API: major.minor. An agent one minor behind the server works; a
 * server with a newer major, or more than one minor ahead, is refused by the agent with a message. */
export const AGENT_PROTOCOL = '1.0';

export function compatible(agent: string, server: string): { ok: true } | { ok: false; why: string } {
  const [am, an] = agent.split('.').map(Number);
  const [sm, sn] = server.split('.').map(Number);
  if (![am, an, sm, sn].every(Number.isInteger)) return { ok: false, why: `unreadable versions (agent ${agent}, server ${server})` };
  if (am !== sm) return { ok: false, why: `agent protocol ${agent} and server protocol ${server} differ in major version` };
  if (sn > an + 1) return { ok: false, why: `server protocol ${server} is too new for this agent (${agent}); upgrade the agent` };
  if (an > sn) return { ok: false, why: `agent protocol ${agent} is newer than the server's (${server}); upgrade the server first` };
  return { ok: true };
}
