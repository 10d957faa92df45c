import type { LockingMode, Network, Vif } from './types.js';

/**
 * The effective locking mode of a VIF, one rule for every driver (DESIGN.md): an explicit mode
 * wins; for network_default the network decides, and an `unlocked` network default still locks a
 * VIF as soon as it holds an address ("if you add restricted IPs, the VIF will be locked").
 */
export function effectiveLocking(vif: Pick<Vif, 'locking'>, network: Pick<Network, 'defaultLocking'>, addressCount: number): LockingMode {
  if (vif.locking !== 'network_default') return vif.locking;
  if (network.defaultLocking === 'disabled') return 'disabled';
  if (network.defaultLocking === 'locked') return 'locked';
  return addressCount > 0 ? 'locked' : 'unlocked';
}
