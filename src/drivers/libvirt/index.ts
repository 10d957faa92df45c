import type { HypervisorDriver } from '../driver.js';

export const libvirtDriver: HypervisorDriver = { name: 'libvirt' };
