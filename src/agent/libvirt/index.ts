// The libvirt/KVM driver behind the one driver interface (core/driver.ts). Heavy parts load
// lazily: `ip allocate` on a libvirt network pays for virsh + XML, not for hooks or sync.
import type { Driver } from '../../core/driver.js';

export const libvirtDriver: Driver = {
  name: 'libvirt',
  placement: 'agent',
  networkDriver: 'libvirt',
  managedNetworks: {
    async createManagedNetwork(store, input, actor) {
      return (await import('./network.js')).createManagedNetwork(store, input, actor);
    },
    async assignmentsChanged(store, network, actor) {
      await (await import('./network.js')).syncDhcpReservations(store, network, actor);
    },
    async networkDeleted(_store, network) {
      await (await import('./network.js')).deleteManagedNetwork(network);
    },
  },
  guestTransport: { kind: 'qga', describe: "QEMU guest agent through libvirt's channel (virsh qemu-agent-command)" },
  async watchers() {
    // guest auto-push through qemu-ga (the guest transport) is added by the registry: it runs where
    // the guest agents are reachable, on the host next to libvirt, from the host's desired copy
    return [(await import('./watcher.js')).createLibvirtWatcher()];
  },
};
