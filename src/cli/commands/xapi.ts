import type { Command } from 'commander';

export function registerXapiCommands(program: Command): void {
  void program;
}
