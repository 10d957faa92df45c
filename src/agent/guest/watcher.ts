// Guest auto-push: when the network_data.json of an opted-in VM changes (an address allocated or
// released, the network's MTU/DNS/routes changed), push it into the running guest. Opt-in per VM
// (Vm.extra.guestAutoPush) or per network (Network.extra.guestAutoPush; a VM's own false wins).
// Through qemu-ga it runs on the hypervisor host, next to libvirt: in `ipvisor agent` and in serve's
// in-process agent alike, from the host's desired copy (so it keeps pushing what it has when the
// control plane is gone), with its records in the host's local state, each also reported as a fact
// (`guest status` on the control plane shows it). Through XAPI it runs on the control plane, from the
// store. The last pushed document's digest is kept, so a restart does not push again, and a failed
// push is retried after a back-off.
import { createHash } from 'node:crypto';
import { needStore, type DaemonContext, type DaemonWatcher } from '../../core/watcher.js';
import { IpvisorError } from '../../core/model/errors.js';
import { loadSnapshot, type Snapshot } from '../../core/model/snapshot.js';
import type { Network, Vm } from '../../core/model/types.js';
import type { Store } from '../../core/store/store.js';
import { networkDataForVm } from '../../core/guest/emit.js';
import { pushVmNetwork } from './vm-push.js';
import { GUEST_PUSH_DOC, onGuestPushRequest, requestGuestPush, takeGuestPushRequest, type GuestPushRecord } from '../../core/guest/push-port.js';

export { GUEST_PUSH_DOC, type GuestPushRecord } from '../../core/guest/push-port.js';

export function autoPushEnabled(snapshot: Snapshot, vm: Vm): boolean {
  if (typeof vm.extra.guestAutoPush === 'boolean') return vm.extra.guestAutoPush;
  const nets = new Set(snapshot.vifs.filter((v) => v.vmUuid === vm.uuid).map((v) => v.networkUuid));
  return snapshot.networks.some((n) => nets.has(n.uuid) && n.extra.guestAutoPush === true);
}

export function networkDataDigest(doc: unknown): string {
  return createHash('sha256').update(JSON.stringify(doc)).digest('hex');
}

export { setGuestAutoPush } from '../../core/service/guest-push.js';

function takeRequest(vm: Vm): boolean {
  return takeGuestPushRequest([vm.uuid, vm.name, typeof vm.extra.libvirtDomain === 'string' ? vm.extra.libvirtDomain : undefined].filter((r): r is string => !!r));
}

/** Requests are process-wide (core/guest/push-port.ts); kept here for the agent's own callers. */
export { requestGuestPush };

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
  /** Which VMs this watcher pushes: through qemu-ga (the host's agent) or XAPI (the control plane);
   * default both (a test's one watcher over a store). */
  transport?: 'qga' | 'xapi';
}

/** How a VM's guest is reached: its own qemu-ga socket or libvirt's channel, else XAPI when a VIF is
 * on an XAPI network (vm-push.ts guestRouteForVm decides the same way). */
export function guestTransportOf(snapshot: Snapshot, vm: Vm): 'qga' | 'xapi' {
  if (typeof vm.extra.guestAgentSocket === 'string') return 'qga';
  const nets = new Set(snapshot.vifs.filter((v) => v.vmUuid === vm.uuid).map((v) => v.networkUuid));
  return snapshot.networks.some((n) => nets.has(n.uuid) && n.driver === 'xapi') ? 'xapi' : 'qga';
}

/** Where the watcher reads VMs and keeps its records. */
interface PushView {
  snapshot(): Promise<Snapshot>;
  record(vmUuid: string): Promise<GuestPushRecord | undefined>;
  save(vmUuid: string, r: GuestPushRecord): Promise<void>;
}

const EMPTY: Snapshot = { networks: [], pools: [], vms: [], vifs: [], assignments: [] };

function viewOf(ctx: DaemonContext, transport: GuestPushWatcherOptions['transport']): PushView {
  const host = ctx.host;
  if (host) {
    return {
      snapshot: async () => host.desired().snapshot,
      record: async (vmUuid) => host.local.get<GuestPushRecord>(GUEST_PUSH_DOC, vmUuid),
      save: async (vmUuid, r) => {
        host.local.put(GUEST_PUSH_DOC, vmUuid, r);
        host.reportFacts([{ kind: 'guest-push', host: host.name, time: r.at, vmUuid, record: r }]);
      },
    };
  }
  const store = needStore(ctx, 'guest auto-push');
  return {
    // the control plane's XAPI pushes: a store without XAPI networks is not read whole every 5 s
    snapshot: async () => (transport === 'xapi' && !(await store.listNetworks()).some((n) => n.driver === 'xapi') ? EMPTY : loadSnapshot(store)),
    record: async (vmUuid) => (await store.getDoc<GuestPushRecord>(GUEST_PUSH_DOC, vmUuid))?.value,
    save: (vmUuid, r) => store.putDoc(GUEST_PUSH_DOC, vmUuid, r),
  };
}

export function createGuestPushWatcher(opts: GuestPushWatcherOptions = {}): DaemonWatcher {
  let timer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> | undefined;
  let stopped = false;
  const intervalMs = opts.intervalMs ?? 5000;
  const retryMs = opts.retryMs ?? 60_000;

  const scan = async (ctx: DaemonContext, view: PushView): Promise<void> => {
    const snapshot = await view.snapshot();
    for (const vm of snapshot.vms) {
      if (stopped || ctx.signal.aborted) return;
      if (!autoPushEnabled(snapshot, vm)) continue;
      if (opts.transport && guestTransportOf(snapshot, vm) !== opts.transport) continue;
      let doc: unknown;
      try {
        doc = networkDataForVm(snapshot, vm.uuid);
      } catch (e) {
        ctx.log(`guest auto-push ${vm.name}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      const digest = networkDataDigest(doc);
      const last = await view.record(vm.uuid);
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
      await view.save(vm.uuid, record);
    }
  };

  const loop = (ctx: DaemonContext, view: PushView): void => {
    if (stopped || ctx.signal.aborted) return;
    scanning = scan(ctx, view)
      .catch((e) => ctx.log(`guest auto-push: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => {
        if (!stopped && !ctx.signal.aborted) timer = setTimeout(() => loop(ctx, view), intervalMs);
      });
  };
  let unsubscribe: (() => void) | undefined;
  let unrequest: (() => void) | undefined;

  return {
    name: 'guest-auto-push',
    async start(ctx: DaemonContext): Promise<void> {
      stopped = false;
      const view = viewOf(ctx, opts.transport);
      ctx.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      let wanted = false;
      const wake = () => {
        // a scan that is running finishes first; the next one starts at once instead of after intervalMs
        if (wanted || stopped || ctx.signal.aborted) return;
        wanted = true;
        void (scanning ?? Promise.resolve()).then(() => {
          wanted = false;
          if (stopped || ctx.signal.aborted) return;
          clearTimeout(timer);
          loop(ctx, view);
        });
      };
      unrequest = onGuestPushRequest(wake);
      // a new desired copy (an allocation anywhere) is pushed now, not at the next interval
      unsubscribe = ctx.host?.onDesired(wake);
      loop(ctx, view);
    },
    async stop(): Promise<void> {
      stopped = true;
      unrequest?.();
      unrequest = undefined;
      unsubscribe?.();
      clearTimeout(timer);
      await scanning;
    },
  };
}
