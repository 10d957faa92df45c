import type { NetworkDriver } from '../core/model/types.js';
import type { HypervisorDriver } from '../core/driver.js';

/** Loaded lazily so that a hook or a CLI call pays only for the driver it uses. */
export async function driverFor(name: NetworkDriver): Promise<HypervisorDriver> {
  switch (name) {
    case 'libvirt':
      return (await import('../agent/libvirt/index.js')).libvirtDriver;
    case 'xapi':
      return (await import('../server/xapi/index.js')).xapiDriver;
    case 'bridge':
      return (await import('../agent/bridge/index.js')).bridgeDriver;
  }
}
