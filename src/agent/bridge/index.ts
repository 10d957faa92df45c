import type { Driver } from '../../core/driver.js';

// Plain Linux bridges: recorded in the store, enforced by the host driver; nothing of their own.
export const bridgeDriver: Driver = { name: 'bridge', placement: 'agent', networkDriver: 'bridge' };
