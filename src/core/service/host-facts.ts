// Facts an agent reports from its host (its libvirt hooks bound or released an interface), applied
// to the store like any other change: one transaction, audit events with the agent as actor.
import type { Store } from '../store/store.js';
import { audit, inWriteTx } from './context.js';
import { bindVif } from './vms.js';

export interface VifBindFact {
  host: string;
  vmUuid: string;
  mac: string;
  /** null: released (the VM stopped or left this host). */
  ifname: string | null;
  time: string;
}

/** Binds (or releases) the VIF of the VM with this MAC on `host`. A release from a host the VM has
 * already left (migration: the source's release after the target's start) changes nothing. */
export async function bindVifFact(store: Store, f: VifBindFact): Promise<boolean> {
  const vm = await store.getVm(f.vmUuid);
  if (!vm) return false;
  const vif = (await store.listVifs(vm.uuid)).find((v) => v.mac === f.mac.toLowerCase());
  if (!vif) return false;
  const actor = `agent:${f.host}`;
  if (f.ifname === null) {
    if (vm.host !== f.host || vif.ifname === null) return false;
    await bindVif(store, vif.uuid, null, actor);
    return true;
  }
  if (vm.host === f.host && vif.ifname === f.ifname) return false;
  await bindVif(store, vif.uuid, f.ifname, actor, f.host);
  return true;
}

/** What a host's enforcement changed (a one-box applier, or an agent's audit fact): one audit event
 * of the host, at the time it was applied. */
export async function recordHostChanges(store: Store, host: string, e: { actor: string; action: string; changes: string[]; time?: string }): Promise<void> {
  await inWriteTx(store, (tx) => audit(tx, { actor: e.actor, action: e.action, kind: 'host', uuid: null, name: host, after: { changes: e.changes }, time: e.time }));
}
