// Entry point of the dom0 binder: `ipvisor xapi dom0` and the bundled dist/ipvisor-dom0.cjs (built by
// scripts/build-dom0.mjs: one file, no native modules, for dom0's old userland).
import { readFileSync } from 'node:fs';
import { assertPrivateFile } from '../../server/xapi/files.js';
import { createHostRunner } from '../host/exec.js';
import { IpvisorError, invalid } from '../../core/model/errors.js';
import { DOM0_DEFAULT_CONFIG_PATH, parseDom0Config, type Dom0Config } from './config.js';
import { Dom0Binder, readPasswordFile } from './binder.js';

export function loadDom0Config(path: string): Dom0Config {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    // One line: JSON.parse quotes the offending text, newlines included.
    throw invalid('config', `cannot read ${path}: ${(err as Error).message.replace(/\s+/g, ' ').trim()}`);
  }
  const cfg = parseDom0Config(raw);
  // A config holding the password itself must be private; a password file must be private too.
  if (cfg.xapi.password !== undefined) assertPrivateFile('config', path);
  if (cfg.xapi.passwordFile !== undefined) assertPrivateFile('xapi.passwordFile', cfg.xapi.passwordFile);
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
  const password = cfg.xapi.passwordFile ? readPasswordFile(cfg.xapi.passwordFile) : undefined;
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
