// Guest auto-push settings of a VM or a network: one transaction and one audit event, like every
// other change (the watchers that push live in src/agent/guest and the XAPI driver).
import type { Network, Vm } from '../model/types.js';
import type { Store } from '../store/store.js';
import { audit, inWriteTx, now } from './context.js';

/** Turns auto-push on or off for a VM or a network (records an audit event). */
export async function setGuestAutoPush(
  store: Store,
  target: { vm: Vm } | { network: Network },
  enabled: boolean,
  actor: string,
  opts: { socket?: string | null } = {},
): Promise<void> {
  await inWriteTx(store, async (tx) => {
    const at = now();
    if ('vm' in target) {
      const before = (await tx.getVm(target.vm.uuid)) ?? target.vm; // fresh inside the transaction
      const extra: Record<string, unknown> = { ...before.extra, guestAutoPush: enabled };
      if (opts.socket !== undefined) {
        if (opts.socket === null) delete extra.guestAgentSocket;
        else extra.guestAgentSocket = opts.socket;
      }
      const after = { ...before, extra, updatedAt: at };
      await tx.updateVm(after);
      await audit(tx, { actor, action: 'guest.auto-push', kind: 'vm', uuid: after.uuid, name: after.name, before: before.extra, after: after.extra });
    } else {
      const before = (await tx.getNetwork(target.network.uuid)) ?? target.network;
      const after = { ...before, extra: { ...before.extra, guestAutoPush: enabled }, updatedAt: at };
      await tx.updateNetwork(after);
      await audit(tx, { actor, action: 'guest.auto-push', kind: 'network', uuid: after.uuid, name: after.name, before: before.extra, after: after.extra });
    }
  });
}
