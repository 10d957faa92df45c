// What every command handler gets: the opened store, the actor, output mode. Handlers return data;
// this file turns it into text or one JSON document, and errors into one line or {"error": ...}.
import type { Command } from 'commander';
import { IpvisorError } from '../core/model/errors.js';
import { configureLogging, logLevelFromEnv } from '../core/log.js';
import { escapeControl } from '../core/model/validate.js';
import type { Store } from '../core/store/store.js';
import { ApiClient, clientFrom } from './client.js';

function localOnlyError(path: string): IpvisorError {
  return new IpvisorError('USAGE', `${path} is not available with --server (it works on a local store or this host); run it without --server`);
}

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
  /** stderr is a terminal: log lines as text instead of JSON. */
  isTTY?: boolean;
}

export interface CommandOutput {
  json: unknown;
  text: string;
  exitCode?: number;
}

export interface CommandContext {
  readonly json: boolean;
  readonly actor: string;
  /** The store as given (--store URL, --db path or the environment); undefined: the default path. */
  readonly dbPath: string | undefined;
  readonly io: CliIo;
  /** Set in client mode (--server URL): the handler asks the API instead of the store. */
  readonly remote: ApiClient | undefined;
  store(): Promise<Store>;
  stderr(line: string): void;
}

/** The io of the running CLI invocation (set by runCli). */
let currentIo: CliIo | undefined;
let openedStores: Store[] = [];

export function setCliIo(io: CliIo | undefined): void {
  currentIo = io;
  // log lines of this invocation go to its stderr (journald for a daemon, the test's buffer in-process)
  configureLogging({ sink: io ? { write: (s) => io.stderr(s), isTTY: io.isTTY } : process.stderr, level: logLevelFromEnv(io?.env) });
}

export async function closeOpenedStores(): Promise<void> {
  const list = openedStores;
  openedStores = [];
  for (const s of list) await s.close();
}

export function actorFromEnv(env: NodeJS.ProcessEnv): string {
  return env.IPVISOR_ACTOR || env.SUDO_USER || env.USER || env.LOGNAME || 'user';
}

/** Numbers beyond 2^53 (IPv6 sizes) are carried as BigInt internally and printed as decimal strings.
 * JSON.stringify escapes C0 controls; DEL and C1 (U+009B is a one-character CSI) are escaped too,
 * so a name carrying a terminal sequence never reaches the terminal raw. */
export function toJson(value: unknown): string {
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Text for humans: control characters escaped (a VM name with an ESC sequence is shown as
 * `\x1b[...`, not run by the terminal); the newlines the program wrote stay. */
export function terminalText(text: string): string {
  return escapeControl(text, { keepNewlines: true });
}

/**
 * The commands that write intent and may therefore create the store on first use. Every other
 * command (enforcement: plan, apply, serve, status, teardown; read-only: list, show, events ...)
 * opens an existing store only and fails with STORE_MISSING naming the path: a typo in --db, a
 * deleted or truncated file must never look like "no VMs" or, worse, an empty plan to enforce.
 */
export const STORE_CREATING_COMMANDS: ReadonlySet<string> = new Set([
  'init',
  'network create', 'network set', 'network delete', 'network host-address add', 'network host-address remove',
  'pool create', 'pool set', 'pool delete',
  'vm add', 'vm delete', 'vif add', 'vif set', 'vif bind', 'vif unbind', 'vif delete',
  'ip allocate', 'ip reserve', 'ip release',
  'host gateway set', 'host gateway unset',
  'xapi connect', 'xapi disconnect', 'xapi set', 'xapi sync',
  'libvirt install', 'libvirt sync',
  'import routed-ips',
  'guest auto-push',
  'vm set', 'tenant create', 'tenant set', 'tenant delete', 'token create', 'token revoke', 'token rotate', 'user create', 'user delete',
]);

/** "network host-address add" for that subcommand (the program's own name left out). */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The store a command uses, as given: --store URL, else --db PATH, else $IPVISOR_STORE, else
 * $IPVISOR_DB; undefined means the default path. Both options at once is a usage error. */
export function storeLocation(opts: { store?: string; db?: string }, env: NodeJS.ProcessEnv): string | undefined {
  if (opts.store !== undefined && opts.db !== undefined && opts.store !== opts.db) {
    throw new IpvisorError('VALIDATION', 'store: give --store or --db, not both', { field: 'store' });
  }
  return opts.store ?? opts.db ?? (env.IPVISOR_STORE || undefined) ?? (env.IPVISOR_DB || undefined);
}

/** Commands whose --server/--token-file are their own (an agent's control plane, a host's token
 * file), not the API client mode's; commander hands them to the program's options of the same name. */
const AGENT_SIDE_COMMANDS = new Set(['agent', 'host add', 'host rotate-token']);
let agentSideOptions: { server?: string; tokenFile?: string } = {};

/** --server/--token-file as given to an agent-side command (see AGENT_SIDE_COMMANDS). */
export function agentSideOption(name: 'server' | 'tokenFile'): string | undefined {
  return agentSideOptions[name];
}

export function makeContext(cmd: Command, io: CliIo): CommandContext {
  const opts = cmd.optsWithGlobals() as { json?: boolean; db?: string; store?: string; server?: string; tokenFile?: string };
  const create = STORE_CREATING_COMMANDS.has(commandPath(cmd));
  const location = storeLocation(opts, io.env);
  let store: Promise<Store> | undefined;
  // --server/--token-file of the program (API client mode), not the options of the same name that
  // `ipvisor agent` and `host add` define for themselves
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  const globals = root.opts() as { server?: string; tokenFile?: string };
  const remote = AGENT_SIDE_COMMANDS.has(commandPath(cmd)) ? undefined : clientFrom(opts, io.env);
  agentSideOptions = AGENT_SIDE_COMMANDS.has(commandPath(cmd)) ? globals : {};
  if (remote && opts.db) throw new IpvisorError('USAGE', '--db and --server exclude each other');
  return {
    remote,
    json: !!opts.json,
    actor: actorFromEnv(io.env),
    dbPath: location,
    io,
    store() {
      // A command without a client path must not quietly fall back to a local store.
      if (remote) return Promise.reject(localOnlyError(commandPath(cmd)));
      store ??= import('../core/store/open.js').then(async ({ openStore }) => {
        const s = await openStore(location, { create });
        openedStores.push(s);
        return s;
      });
      return store;
    },
    stderr(line: string) {
      io.stderr(escapeControl(line.endsWith('\n') ? line.slice(0, -1) : line) + '\n');
    },
  };
}

/** Wraps a handler: builds its context, prints its result, sets the exit code. */
export function runAction<A extends unknown[]>(fn: (ctx: CommandContext, ...args: A) => Promise<CommandOutput | void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const io = currentIo;
    if (!io) throw new IpvisorError('INTERNAL', 'CLI io not set');
    const ctx = makeContext(cmd, io);
    const out = await fn(ctx, ...(args.slice(0, -1) as A));
    if (out) {
      if (ctx.json) {
        if (out.json !== undefined) io.stdout(toJson(out.json) + '\n');
      }
      else if (out.text) io.stdout(terminalText(out.text.endsWith('\n') ? out.text : out.text + '\n'));
      lastExitCode = out.exitCode ?? 0;
    }
  };
}

let lastExitCode = 0;
export function takeExitCode(): number {
  const c = lastExitCode;
  lastExitCode = 0;
  return c;
}

/** Commander helper: a repeatable option collects its values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Gets or creates a subcommand, so that two areas can add children to one parent (`import`, `hook`). */
export function ensureCommand(parent: Command, name: string, description: string): Command {
  return parent.commands.find((c) => c.name() === name) ?? parent.command(name).description(description);
}

/** Renders rows as aligned columns for humans. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

/** key: value lines for `show` commands. */
export function keyValues(pairs: Array<[string, unknown]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0) ? '-' : Array.isArray(v) ? v.join(', ') : String(v)}`)
    .join('\n');
}
