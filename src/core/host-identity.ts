// Which hypervisor host this process acts for: the one place that decides it. `ipvisor agent --host`
// and `serve --host` set it; else $IPVISOR_HOST; else the machine's hostname. Everything that asks
// "is this VM on this host?" (host enforcement, libvirt facts, `vm add` without --host) reads it here.
import { hostname } from 'node:os';
import { validateName } from './model/validate.js';

let explicit: string | undefined;

export function setThisHost(name: string | undefined): void {
  explicit = name === undefined ? undefined : validateName(name, 'host');
}

export function thisHost(env: NodeJS.ProcessEnv = process.env): string {
  return explicit ?? (env.IPVISOR_HOST ? validateName(env.IPVISOR_HOST, 'host') : hostname());
}
