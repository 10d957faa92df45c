// Picks how to reach a VM's guest and pushes its network_data.json: a given socket, libvirt's
// agent channel (virsh qemu-agent-command) for libvirt domains, or XAPI for XCP-ng VMs.
import type { Snapshot } from '../../core/model/snapshot.js';
import type { Vm } from '../../core/model/types.js';
import { withHostLock } from '../host/lock.js';
import { networkDataForVm } from '../../core/guest/emit.js';
import { pushNetworkData, pushViaXapi, type PushOptions, type PushResult } from './push.js';
import { GuestAgent, QgaSocket, QgaVirsh, type QgaTransport } from './qga.js';

export interface GuestTransportOptions {
  /** qemu-ga unix socket (QEMU chardev or qemu-ga -m unix-listen). */
  socket?: string;
  /** libvirt domain name; default: the VM's libvirt domain, else its name. */
  domain?: string;
  /** libvirt connection URI for virsh -c. */
  connect?: string;
}

export type GuestRoute = { kind: 'agent'; transport: QgaTransport } | { kind: 'xapi' };

export function guestRouteForVm(snapshot: Snapshot, vm: Vm, opts: GuestTransportOptions): GuestRoute {
  if (opts.socket) return { kind: 'agent', transport: new QgaSocket(opts.socket) };
  const nets = new Set(snapshot.vifs.filter((v) => v.vmUuid === vm.uuid).map((v) => v.networkUuid));
  const xapi = snapshot.networks.some((n) => nets.has(n.uuid) && n.driver === 'xapi');
  if (xapi && !opts.domain) return { kind: 'xapi' };
  const domain = opts.domain ?? (typeof vm.extra.libvirtDomain === 'string' ? vm.extra.libvirtDomain : vm.name);
  return { kind: 'agent', transport: new QgaVirsh(domain, { uri: opts.connect }) };
}

/**
 * Pushes one VM at a time, across processes (CLI, serve): qemu-ga serves one client at a time and
 * two overlapping pushes would each roll back the other's changes.
 */
export async function pushVmNetwork(snapshot: Snapshot, vm: Vm, opts: PushOptions & GuestTransportOptions & { doc?: unknown }): Promise<PushResult & { via: string }> {
  const doc = opts.doc ?? networkDataForVm(snapshot, vm.uuid);
  const route = guestRouteForVm(snapshot, vm, opts);
  if (route.kind === 'xapi') return { ...(await pushViaXapi(vm.uuid, doc, opts)), via: 'XAPI' };
  const push = async (): Promise<PushResult & { via: string }> => {
    const agent = new GuestAgent(route.transport);
    try {
      return { ...(await pushNetworkData(agent, doc, opts)), via: route.transport.description };
    } finally {
      await agent.close();
    }
  };
  return opts.dryRun ? push() : withHostLock(push, { name: `guest-${vm.uuid}.lock`, timeoutMs: 300_000 });
}
