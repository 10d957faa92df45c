// The libvirt/KVM driver behind the one driver interface (drivers/driver.ts). Heavy parts load
// lazily: `ip allocate` on a libvirt network pays for virsh + XML, not for hooks or sync.
import type { HypervisorDriver } from '../../core/driver.js';

export const libvirtDriver: HypervisorDriver = {
  name: 'libvirt',
  async createManagedNetwork(store, input, actor) {
    return (await import('./network.js')).createManagedNetwork(store, input, actor);
  },
  async assignmentsChanged(store, network, actor) {
    await (await import('./network.js')).syncDhcpReservations(store, network, actor);
  },
  async networkDeleted(_store, network) {
    await (await import('./network.js')).deleteManagedNetwork(network);
  },
};
