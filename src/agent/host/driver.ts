// Linux host enforcement (nftables, iproute2, iptables) of every libvirt and plain-bridge network on
// this host, and the `nft monitor` watcher that reports rules changed by others.
import type { Driver } from '../../core/driver.js';
import { hostEnforcer } from './enforcer.js';

export const hostDriver: Driver = {
  name: 'host',
  placement: 'agent',
  enforcer: hostEnforcer,
  async watchers() {
    return [(await import('../nft-monitor.js')).createNftMonitorWatcher()];
  },
};
