import type { HypervisorDriver } from '../driver.js';

export const bridgeDriver: HypervisorDriver = { name: 'bridge' };
