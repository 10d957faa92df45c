// The one place that lists ipvisor's drivers and where each runs (src/core/driver.ts). Loaded lazily
// so that a hook or a short CLI call pays only for the driver it uses.
import type { Driver, DriverPlacement } from '../core/driver.js';
import type { Enforcer } from '../core/enforcer.js';
import type { NetworkDriver } from '../core/model/types.js';
import type { DaemonWatcher } from '../core/watcher.js';

const REGISTRY: Array<{ name: string; placement: DriverPlacement; networkDriver?: NetworkDriver; load(): Promise<Driver> }> = [
  { name: 'host', placement: 'agent', load: async () => (await import('../agent/host/driver.js')).hostDriver },
  { name: 'xapi', placement: 'server', networkDriver: 'xapi', load: async () => (await import('../server/xapi/index.js')).xapiDriver },
  { name: 'libvirt', placement: 'agent', networkDriver: 'libvirt', load: async () => (await import('../agent/libvirt/index.js')).libvirtDriver },
  { name: 'bridge', placement: 'agent', networkDriver: 'bridge', load: async () => (await import('../agent/bridge/index.js')).bridgeDriver },
];

export const ALL_PLACEMENTS: DriverPlacement[] = ['server', 'agent'];

/** The drivers that run in a process of these placements (serve: both; server; agent). */
export async function loadDrivers(placements: DriverPlacement[] = ALL_PLACEMENTS): Promise<Driver[]> {
  return Promise.all(REGISTRY.filter((d) => placements.includes(d.placement)).map((d) => d.load()));
}

/** The driver a network's `driver` field selects. */
export async function driverFor(name: NetworkDriver): Promise<Driver> {
  const entry = REGISTRY.find((d) => d.networkDriver === name);
  if (!entry) throw new Error(`no driver for networks of driver '${name}'`);
  return entry.load();
}

export async function loadEnforcers(placements: DriverPlacement[] = ALL_PLACEMENTS): Promise<Enforcer[]> {
  return (await loadDrivers(placements)).flatMap((d) => (d.enforcer ? [d.enforcer] : []));
}

/** The watchers of these placements: each driver's own, and a guest auto-push watcher for each
 * guest transport, where the driver runs (qemu-ga on the host's agent, XAPI on the control plane). */
export async function loadWatchers(placements: DriverPlacement[] = ALL_PLACEMENTS): Promise<DaemonWatcher[]> {
  const out: DaemonWatcher[] = [];
  for (const d of await loadDrivers(placements)) {
    if (d.guestTransport) out.push((await import('../agent/guest/watcher.js')).createGuestPushWatcher({ transport: d.guestTransport.kind }));
    if (d.watchers) out.push(...(await d.watchers()));
  }
  return out;
}
