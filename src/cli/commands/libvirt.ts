import type { Command } from 'commander';

export function registerLibvirtCommands(program: Command): void {
  void program;
}
