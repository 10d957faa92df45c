import type { HypervisorDriver } from '../../core/driver.js';

export const bridgeDriver: HypervisorDriver = { name: 'bridge' };
