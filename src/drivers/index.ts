import type { NetworkDriver } from '../core/model/types.js';
import type { HypervisorDriver } from './driver.js';

/** Loaded lazily so that a hook or a CLI call pays only for the driver it uses. */
export async function driverFor(name: NetworkDriver): Promise<HypervisorDriver> {
  switch (name) {
    case 'libvirt':
      return (await import('./libvirt/index.js')).libvirtDriver;
    case 'xapi':
      return (await import('./xapi/index.js')).xapiDriver;
    case 'bridge':
      return (await import('./bridge/index.js')).bridgeDriver;
  }
}
