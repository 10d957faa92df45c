// Entry point of the dom0 binder: `ipvisor xapi dom0` and the bundled dist/ipvisor-dom0.cjs (built by
// scripts/build-dom0.mjs: one file, no native modules, for dom0's old userland).
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRootOwnedFile, readSecretFile, readSecretLine } from '../../core/model/secret-file.js';
import { createHostRunner } from '../host/exec.js';
import { IpvisorError, invalid } from '../../core/model/errors.js';
import { DOM0_DEFAULT_CONFIG_PATH, parseDom0Config, type Dom0Config } from './config.js';
import { Dom0Binder } from './binder.js';

/** A program named without a path: the first executable of that name on PATH (what exec would run). */
function resolveProgram(name: string): string {
  if (name.includes('/')) return name;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir.startsWith('/')) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return name;
}

/**
 * The binder runs as root and obeys its config: a config that someone else could write (group- or
 * world-writable, not root's) would make it run any program as root, so it is refused, and so are
 * ipBinary/pingBinary paths that are not root's or are writable by others. A config holding the
 * password itself, and a password file, must be private (core/model/secret-file.ts).
 */
export function loadDom0Config(path: string): Dom0Config {
  checkRootOwnedFile(path, 'config');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    // One line: JSON.parse quotes the offending text, newlines included.
    throw invalid('config', `cannot read ${path}: ${(err as Error).message.replace(/\s+/g, ' ').trim()}`);
  }
  const cfg = parseDom0Config(raw);
  if (cfg.xapi.password !== undefined) readSecretFile(path, 'config');
  if (cfg.xapi.passwordFile !== undefined) readSecretFile(cfg.xapi.passwordFile, 'xapi.passwordFile');
  cfg.ipBinary = resolveProgram(cfg.ipBinary);
  cfg.pingBinary = resolveProgram(cfg.pingBinary);
  checkRootOwnedFile(cfg.ipBinary, 'ipBinary', { executable: true });
  checkRootOwnedFile(cfg.pingBinary, 'pingBinary', { executable: true });
  return cfg;
}

export interface RunDom0Options {
  configPath?: string;
  netns?: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Undoes what the binder recorded in its state file; returns what it did. */
export async function teardownDom0(opts: RunDom0Options = {}): Promise<string[]> {
  const cfg = loadDom0Config(opts.configPath ?? DOM0_DEFAULT_CONFIG_PATH);
  const binder = new Dom0Binder(cfg, { runner: createHostRunner({ netns: opts.netns }), log: opts.log });
  return binder.teardown();
}

/** Runs the binder until SIGTERM/SIGINT (or the signal) and logs out. */
export async function runDom0(opts: RunDom0Options = {}): Promise<void> {
  const cfg = loadDom0Config(opts.configPath ?? DOM0_DEFAULT_CONFIG_PATH);
  const password = cfg.xapi.passwordFile ? readSecretLine(cfg.xapi.passwordFile, 'xapi.passwordFile') : undefined;
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  opts.signal?.addEventListener('abort', stop, { once: true });
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('SIGHUP', () => undefined);
  const binder = new Dom0Binder(cfg, { runner: createHostRunner({ netns: opts.netns }), password, log: opts.log });
  try {
    await binder.run(ac.signal);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

/** argv of the bundled binary: [--config FILE] [--netns NS] */
export async function dom0Main(argv: string[]): Promise<number> {
  const opts: RunDom0Options = {};
  let teardown = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config' || a === '-c') opts.configPath = argv[++i];
    else if (a === '--netns') opts.netns = argv[++i];
    else if (a === '--teardown') teardown = true;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: ipvisor-dom0 [--config FILE] [--teardown] (default config ${DOM0_DEFAULT_CONFIG_PATH})\n`);
      return 0;
    } else {
      process.stderr.write(`ipvisor-dom0: unknown argument '${a}'\n`);
      return 2;
    }
  }
  try {
    if (teardown) {
      for (const line of await teardownDom0(opts)) process.stdout.write(`${line}\n`);
      return 0;
    }
    await runDom0(opts);
    return 0;
  } catch (err) {
    const e = err instanceof IpvisorError ? err : new IpvisorError('INTERNAL', String((err as Error)?.message ?? err));
    process.stderr.write(`ipvisor-dom0: ${e.message}\n`);
    return e.exitCode;
  }
}
