import type { Command } from 'commander';

export function registerHostCommands(program: Command): void {
  void program;
}
