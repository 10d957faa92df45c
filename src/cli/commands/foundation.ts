import type { Command } from 'commander';
import { registerEventCommands } from './events.js';
import { registerIpCommands } from './ip.js';
import { registerNetworkCommands } from './network.js';
import { registerPoolCommands } from './pool.js';
import { registerVmCommands } from './vm.js';

export function registerFoundationCommands(program: Command): void {
  registerNetworkCommands(program);
  registerPoolCommands(program);
  registerVmCommands(program);
  registerIpCommands(program);
  registerEventCommands(program);
}
