import type { Command } from 'commander';

export function registerGuestCommands(program: Command): void {
  void program;
}
