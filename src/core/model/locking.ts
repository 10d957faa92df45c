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

/** Why effectiveLocking() decided as it did, in words a user reads beside the mode (UI, API). */
export function lockingReason(vif: Pick<Vif, 'locking'>, network: Pick<Network, 'defaultLocking'>, addressCount: number): string {
  if (vif.locking !== 'network_default') return 'explicit: set on the VIF';
  if (network.defaultLocking !== 'unlocked') return `network default (${network.defaultLocking})`;
  return addressCount > 0 ? 'locked because it holds addresses (network default unlocked)' : 'network default (unlocked), no addresses';
}
