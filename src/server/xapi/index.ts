import type { Driver } from '../../core/driver.js';
import { xapiEnforcer } from './enforcer.js';

// XAPI networks are created by XCP-ng and recorded by `ipvisor xapi sync`; enforcement (VIF locking)
// and the event.from watcher run on the control plane, which talks to the pool masters.
export const xapiDriver: Driver = {
  name: 'xapi',
  placement: 'server',
  networkDriver: 'xapi',
  enforcer: xapiEnforcer,
  guestTransport: { kind: 'xapi', describe: 'VIF.configure_ipv4/6 (XCP-ng static IP injection)' },
  async watchers() {
    // guest auto-push through VIF.configure_ipv4/6 (the guest transport) is added by the registry
    return [(await import('./watcher.js')).createXapiWatcher()];
  },
};

export { pushStaticIpViaXapi } from './static-ip.js';
export { xapiEnforcer } from './enforcer.js';
export { createXapiWatcher } from './watcher.js';
