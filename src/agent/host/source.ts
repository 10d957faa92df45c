// Where the host applier reads its desired state and keeps its own state: the store (one box:
// `serve`, the CLI and hooks on that box) or an agent's local copy of what the control plane sent.
// The applier never needs to know which.
import type { PlanChange } from '../../core/enforcer.js';
import type { HostDesired } from '../../core/compile/host-desired.js';
import { loadHostDesired } from '../../core/service/host-desired.js';
import { recordHostChanges } from '../../core/service/host-facts.js';
import { thisHost } from '../../core/host-identity.js';
import type { Assignment, Network, Vif, Vm } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { defaultStateDir, openHostState, type HostLocalState } from '../state.js';

export interface VifInputs {
  vif?: Vif;
  network?: Network;
  vm?: Vm;
  assignments: Assignment[];
  /** Other VIFs on this host bound to the same interface name (a stale binding). */
  otherHolders(ifname: string): Promise<string[]>;
}

export interface HostSource {
  readonly host: string;
  readonly local: HostLocalState;
  desired(): Promise<HostDesired>;
  vifInputs(vifUuid: string): Promise<VifInputs>;
  /** Records what an apply changed (the store's audit log, or the agent's report to the server). */
  audit(actor: string, action: string, changes: PlanChange[]): Promise<void>;
  /** The identity of the store the desired state comes from (core/compile/store-switch.ts), or
   * null when unknown (then no store-switch check is made). */
  storeIdentity(): Promise<{ id: string; location: string } | null>;
}

/** Kinds of the host's own state (HostLocalState). */
export const LOCAL_CHANGE = 'host-change';
export const LOCAL_VIF = 'host-vif';

export function auditLine(c: PlanChange): string {
  return `${c.op} ${c.kind} ${c.target}${c.detail ? ` (${c.detail})` : ''}`;
}

export function auditPayload(changes: PlanChange[]): { changes: string[] } {
  const lines = changes.slice(0, 200).map(auditLine);
  if (changes.length > 200) lines.push(`... ${changes.length - 200} more`);
  return { changes: lines };
}

const migrated = new Set<string>();

/** An install from before host-local state kept its ledger in the store's docs: move it once. */
async function migrateLegacyDocs(store: Store, local: HostLocalState): Promise<void> {
  if (migrated.has(local.path)) return;
  migrated.add(local.path);
  if (local.get(LOCAL_CHANGE, 'state')) return;
  const legacy = await store.getDoc(LOCAL_CHANGE, 'state');
  if (!legacy) return;
  local.put(LOCAL_CHANGE, 'state', legacy.value);
  const vifs = await store.listDocs(LOCAL_VIF);
  local.batch(() => {
    for (const d of vifs) local.put(LOCAL_VIF, d.key, d.value);
  });
  await store.transaction(async (tx) => {
    for (const k of ['state', 'nft-digest', 'vif-records']) await tx.deleteDoc(LOCAL_CHANGE, k);
    for (const d of vifs) await tx.deleteDoc(LOCAL_VIF, d.key);
  }, { write: true });
}

/** The one-box source: desired state straight from the store, host state beside the store. */
export async function storeHostSource(store: Store, opts: { host?: string; stateDir?: string } = {}): Promise<HostSource> {
  const host = opts.host ?? thisHost();
  const local = openHostState(defaultStateDir({ explicit: opts.stateDir, storePath: (store as { path?: string }).path }));
  await migrateLegacyDocs(store, local);
  return {
    host,
    local,
    desired: () => loadHostDesired(store, host),
    storeIdentity: () => store.identity(),
    async vifInputs(vifUuid) {
      const vif = await store.getVif(vifUuid);
      const network = vif ? await store.getNetwork(vif.networkUuid) : undefined;
      const vm = vif ? await store.getVm(vif.vmUuid) : undefined;
      const assignments = vif ? await store.listAssignments({ vifUuid }) : [];
      return {
        vif,
        network,
        vm,
        assignments,
        async otherHolders(ifname) {
          const out: string[] = [];
          for (const o of await store.listVifs()) {
            if (o.uuid !== vifUuid && o.ifname === ifname && (await store.getVm(o.vmUuid))?.host === host) out.push(o.uuid);
          }
          return out;
        },
      };
    },
    async audit(actor, action, changes) {
      if (!changes.length) return;
      await recordHostChanges(store, host, { actor, action, changes: auditPayload(changes).changes });
    },
  };
}

/** An agent's source: its local copy of the desired state; audit lines go to `report`. */
export function copyHostSource(opts: {
  host: string;
  local: HostLocalState;
  desired: () => HostDesired;
  report?: (actor: string, action: string, changes: PlanChange[]) => Promise<void>;
  /** The control plane's store identity, when the agent knows it. */
  storeIdentity?: () => { id: string; location: string } | null;
}): HostSource {
  return {
    host: opts.host,
    local: opts.local,
    desired: async () => opts.desired(),
    storeIdentity: async () => opts.storeIdentity?.() ?? null,
    async vifInputs(vifUuid) {
      const s = opts.desired().snapshot;
      const vif = s.vifs.find((v) => v.uuid === vifUuid);
      return {
        vif,
        network: vif ? s.networks.find((n) => n.uuid === vif.networkUuid) : undefined,
        vm: vif ? s.vms.find((v) => v.uuid === vif.vmUuid) : undefined,
        assignments: vif ? s.assignments.filter((a) => a.vifUuid === vifUuid) : [],
        async otherHolders(ifname) {
          return s.vifs.filter((o) => o.uuid !== vifUuid && o.ifname === ifname).map((o) => o.uuid);
        },
      };
    },
    async audit(actor, action, changes) {
      if (changes.length) await opts.report?.(actor, action, changes);
    },
  };
}

export function isHostSource(x: Store | HostSource): x is HostSource {
  return typeof (x as HostSource).vifInputs === 'function';
}
