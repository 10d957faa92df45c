import type { HypervisorDriver } from '../driver.js';

export const xapiDriver: HypervisorDriver = { name: 'xapi' };
