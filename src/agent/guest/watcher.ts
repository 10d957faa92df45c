// `ipvisor serve` auto-push: when the network_data.json of an opted-in VM changes (an address
// allocated or released, the network's MTU/DNS/routes changed), push it into the running guest.
// Opt-in per VM (Vm.extra.guestAutoPush) or per network (Network.extra.guestAutoPush; a VM's own
// false wins). The last pushed document's digest is kept in the store's document table, so a
// restart does not push again, and a failed push is retried after a back-off.
import { createHash } from 'node:crypto';
import type { DaemonContext, DaemonWatcher } from '../../core/watcher.js';
import { IpvisorError } from '../../core/model/errors.js';
import { loadSnapshot, type Snapshot } from '../../core/model/snapshot.js';
import type { Network, Vm } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { networkDataForVm } from '../../core/guest/emit.js';
import { pushVmNetwork } from './vm-push.js';

export const GUEST_PUSH_DOC = 'guest-push';

export interface GuestPushRecord {
  digest: string;
  ok: boolean;
  at: string;
  error?: string;
  via?: string;
  /** Failed attempts in a row for this digest (backs off the quick retry of a NIC not there yet). */
  attempts?: number;
}

export function autoPushEnabled(snapshot: Snapshot, vm: Vm): boolean {
  if (typeof vm.extra.guestAutoPush === 'boolean') return vm.extra.guestAutoPush;
  const nets = new Set(snapshot.vifs.filter((v) => v.vmUuid === vm.uuid).map((v) => v.networkUuid));
  return snapshot.networks.some((n) => nets.has(n.uuid) && n.extra.guestAutoPush === true);
}

export function networkDataDigest(doc: unknown): string {
  return createHash('sha256').update(JSON.stringify(doc)).digest('hex');
}

/** Turns auto-push on or off for a VM or a network (records an audit event). */
export async function setGuestAutoPush(
  store: Store,
  target: { vm: Vm } | { network: Network },
  enabled: boolean,
  actor: string,
  opts: { socket?: string | null } = {},
): Promise<void> {
  const now = new Date().toISOString();
  await store.transaction(async (tx) => {
    if ('vm' in target) {
      const before = (await tx.getVm(target.vm.uuid)) ?? target.vm; // fresh inside the transaction
      const extra: Record<string, unknown> = { ...before.extra, guestAutoPush: enabled };
      if (opts.socket !== undefined) {
        if (opts.socket === null) delete extra.guestAgentSocket;
        else extra.guestAgentSocket = opts.socket;
      }
      const after = { ...before, extra, updatedAt: now };
      await tx.updateVm(after);
      await tx.insertEvent({ time: now, actor, action: 'guest.auto-push', objectKind: 'vm', objectUuid: after.uuid, objectName: after.name, before: before.extra, after: after.extra });
    } else {
      const before = (await tx.getNetwork(target.network.uuid)) ?? target.network;
      const after = { ...before, extra: { ...before.extra, guestAutoPush: enabled }, updatedAt: now };
      await tx.updateNetwork(after);
      await tx.insertEvent({ time: now, actor, action: 'guest.auto-push', objectKind: 'network', objectUuid: after.uuid, objectName: after.name, before: before.extra, after: after.extra });
    }
  }, { write: true });
}

/**
 * NIC hot-plug: the hypervisor watchers (libvirt device-added/-removed, XAPI VIF plug/unplug) ask
 * for an immediate push of one VM, by its UUID, name or libvirt domain name. The push then happens
 * even when the document is unchanged: a NIC unplugged and plugged again (same MAC, same document)
 * comes back unconfigured. Process-wide, like the watchers serve runs.
 */
const requested = new Set<string>();
let wakeScan: (() => void) | null = null;

export function requestGuestPush(vmRef: string): void {
  requested.add(vmRef);
  wakeScan?.();
}

function takeRequest(vm: Vm): boolean {
  const refs = [vm.uuid, vm.name, typeof vm.extra.libvirtDomain === 'string' ? vm.extra.libvirtDomain : undefined].filter((r): r is string => !!r);
  const hit = refs.some((r) => requested.has(r));
  for (const r of refs) requested.delete(r);
  return hit;
}

/** A push that failed because the guest does not show the NIC yet (a hot-plug still being probed): retried soon. */
function nicNotThereYet(error: string | undefined): boolean {
  return /guest has no (NIC with MAC|interface) /.test(error ?? '');
}

export interface GuestPushWatcherOptions {
  /** How often the store is checked for changed network_data (default 5 s). */
  intervalMs?: number;
  /** Wait before retrying a failed push of the same document (default 60 s). */
  retryMs?: number;
  verifyTimeoutMs?: number;
  guardSeconds?: number;
}

export function createGuestPushWatcher(opts: GuestPushWatcherOptions = {}): DaemonWatcher {
  let timer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> | undefined;
  let stopped = false;
  const intervalMs = opts.intervalMs ?? 5000;
  const retryMs = opts.retryMs ?? 60_000;

  const scan = async (ctx: DaemonContext): Promise<void> => {
    const snapshot = await loadSnapshot(ctx.store);
    for (const vm of snapshot.vms) {
      if (stopped || ctx.signal.aborted) return;
      if (!autoPushEnabled(snapshot, vm)) continue;
      let doc: unknown;
      try {
        doc = networkDataForVm(snapshot, vm.uuid);
      } catch (e) {
        ctx.log(`guest auto-push ${vm.name}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      const digest = networkDataDigest(doc);
      const last = (await ctx.store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, vm.uuid))?.value;
      const forced = takeRequest(vm);
      // a NIC the guest does not show yet is retried after 1, 2, 4 ... s (capped by retryMs)
      const wait = last && !last.ok && nicNotThereYet(last.error) ? Math.min(retryMs, 1000 * 2 ** Math.min((last.attempts ?? 1) - 1, 10)) : retryMs;
      if (!forced && last && last.digest === digest && (last.ok || Date.now() - Date.parse(last.at) < wait)) continue;
      if (forced) ctx.log(`guest auto-push ${vm.name}: NIC hot-plug reported; pushing`);
      const socket = typeof vm.extra.guestAgentSocket === 'string' ? vm.extra.guestAgentSocket : undefined;
      let record: GuestPushRecord;
      try {
        const r = await pushVmNetwork(snapshot, vm, { doc, socket, verifyTimeoutMs: opts.verifyTimeoutMs, guardSeconds: opts.guardSeconds });
        record = { digest, ok: true, at: new Date().toISOString(), via: r.via };
        ctx.log(`guest auto-push ${vm.name}: applied via ${r.via}`);
      } catch (e) {
        const msg = e instanceof IpvisorError || e instanceof Error ? e.message : String(e);
        record = { digest, ok: false, at: new Date().toISOString(), error: msg, attempts: last && !last.ok && last.digest === digest ? (last.attempts ?? 1) + 1 : 1 };
        ctx.log(`guest auto-push ${vm.name}: ${msg}`);
      }
      await ctx.store.putDoc(GUEST_PUSH_DOC, vm.uuid, record);
    }
  };

  const loop = (ctx: DaemonContext): void => {
    if (stopped || ctx.signal.aborted) return;
    scanning = scan(ctx)
      .catch((e) => ctx.log(`guest auto-push: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => {
        if (!stopped && !ctx.signal.aborted) timer = setTimeout(() => loop(ctx), intervalMs);
      });
  };

  return {
    name: 'guest-auto-push',
    async start(ctx: DaemonContext): Promise<void> {
      stopped = false;
      ctx.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      let wanted = false;
      wakeScan = () => {
        // a scan that is running finishes first; the next one starts at once instead of after intervalMs
        if (wanted || stopped || ctx.signal.aborted) return;
        wanted = true;
        void (scanning ?? Promise.resolve()).then(() => {
          wanted = false;
          if (stopped || ctx.signal.aborted) return;
          clearTimeout(timer);
          loop(ctx);
        });
      };
      loop(ctx);
    },
    async stop(): Promise<void> {
      stopped = true;
      wakeScan = null;
      clearTimeout(timer);
      await scanning;
    },
  };
}
