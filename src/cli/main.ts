// The CLI entry point. runCli is in-process (tests call it directly); bin/ipvisor calls it for real.
import { Command, CommanderError } from 'commander';
import { IpvisorError, asIpvisorError } from '../core/model/errors.js';
import { escapeControl } from '../core/model/validate.js';
import { type CliIo, closeOpenedStores, setCliIo, takeExitCode, toJson } from './context.js';
import { registerFoundationCommands } from './commands/foundation.js';
import { registerHostCommands } from './commands/host.js';
import { registerLibvirtCommands } from './commands/libvirt.js';
import { registerXapiCommands } from './commands/xapi.js';
import { registerGuestCommands } from './commands/guest.js';
import { registerOpsCommands } from './commands/ops.js';
import { registerStoreCommands } from './commands/store.js';
import { registerAgentCommands } from './commands/agent.js';
import { registerAccessCommands } from './commands/access.js';

export const VERSION = '0.1.0';

export function buildProgram(io: CliIo): Command {
  const program = new Command('ipvisor');
  program
    .description('IP address management and enforcement for virtual machines (libvirt/KVM, XCP-ng/XenServer)')
    .version(VERSION)
    .option('--json', 'print the result as one JSON document (errors as {"error": ...} on stderr)')
    .option('--server <url>', 'use the ipvisor API at URL instead of a local store (or IPVISOR_SERVER)')
    .option('--token-file <file>', 'with --server: the API token (else IPVISOR_TOKEN)')
    .option('--db <path>', 'store path (default: $IPVISOR_DB, else /var/lib/ipvisor/ipvisor.db as root)')
    .option('--store <url>', 'store URL: sqlite:PATH (what --db PATH means) or postgresql://user@/db?host=/run/postgresql (default: $IPVISOR_STORE)')
    .showHelpAfterError(false)
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s), outputError: () => {} })
    .exitOverride();
  registerStoreCommands(program);
  registerFoundationCommands(program);
  registerHostCommands(program);
  registerAgentCommands(program, VERSION);
  registerLibvirtCommands(program);
  registerXapiCommands(program);
  registerGuestCommands(program);
  registerOpsCommands(program, VERSION);
  registerAccessCommands(program);
  // Every subcommand inherits the error behaviour (no process.exit inside the library).
  const walk = (c: Command) => {
    // subcommand help lists --json and --db too: they work after any subcommand
    c.exitOverride().configureHelp({ showGlobalOptions: true }).configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s), outputError: () => {} });
    c.commands.forEach(walk);
  };
  program.commands.forEach(walk);
  return program;
}

function wantsJson(argv: string[]): boolean {
  return argv.includes('--json');
}

export function reportError(err: IpvisorError, json: boolean, io: CliIo): void {
  if (json) io.stderr(toJson({ error: err.toJSON() }).replace(/\n\s*/g, ' ') + '\n');
  else io.stderr(`ipvisor: ${escapeControl(err.message)}\n`);
}

/** Runs one CLI invocation; returns the exit status (0 ok, 1 runtime failure, 2 usage/validation). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  setCliIo(io);
  try {
    const program = buildProgram(io);
    await program.parseAsync(argv, { from: 'user' });
    return takeExitCode();
  } catch (e) {
    takeExitCode();
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      if (e.code === 'commander.executeSubCommandAsync') return 0;
      // commander puts its suggestion on a second line: keep it on the one error line
      const suggestion = /\(Did you mean (.+?)\?\)/.exec(e.message)?.[1];
      const msg = e.message.replace(/^error: /, '').replace(/\n[\s\S]*$/, '') + (suggestion ? `; did you mean ${suggestion}?` : e.code === 'commander.unknownCommand' ? '; see --help' : '');
      reportError(new IpvisorError('USAGE', msg), wantsJson(argv), io);
      return 2;
    }
    const err = asIpvisorError(e);
    if (err.code === 'INTERNAL' && io.env.IPVISOR_DEBUG) io.stderr(String((e as Error).stack) + '\n');
    reportError(err, wantsJson(argv), io);
    return err.exitCode;
  } finally {
    await closeOpenedStores();
    setCliIo(undefined);
  }
}

// A reader that stops early (`ipvisor vm list | head -1`) closes the pipe: that is a normal end of
// output, not a failure. Later output is dropped; the command itself runs to its end (a half-done
// apply must not be cut off by its reader) and exits with its own status.
let stdoutClosed = false;
let stdoutGuarded = false;
function writeStdout(s: string): void {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') stdoutClosed = true;
      else throw e;
    });
  }
  if (!stdoutClosed) process.stdout.write(s);
}

export const processIo: CliIo = {
  stdout: writeStdout,
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  isTTY: process.stderr.isTTY,
};
