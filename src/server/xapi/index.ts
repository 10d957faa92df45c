import type { HypervisorDriver } from '../../core/driver.js';

// XAPI networks are created by XCP-ng and recorded by `ipvisor xapi sync`; enforcement runs through
// the xapi enforcer (plan/apply/serve), so the driver needs no hooks of its own.
export const xapiDriver: HypervisorDriver = { name: 'xapi' };

export { pushStaticIpViaXapi } from './static-ip.js';
export { xapiEnforcer } from './enforcer.js';
export { createXapiWatcher } from './watcher.js';
