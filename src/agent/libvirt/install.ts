// `ipvisor libvirt install|uninstall`: hook scripts in <hooks>/network.d and <hooks>/qemu.d (the
// user's own hooks stay untouched) and a systemd unit for `ipvisor serve`. libvirt passes hooks an
// inherited PATH and nothing else, so the scripts carry absolute paths: node, the entry point, the
// store and the log.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_HOOK_LOG } from './hook-main.js';

export const HOOK_MARKER = '# installed by ipvisor libvirt install';
export const HOOK_FILE = 'ipvisor';
export const DEFAULT_HOOKS_DIR = '/etc/libvirt/hooks';
export const DEFAULT_SYSTEMD_DIR = '/etc/systemd/system';
export const SERVE_UNIT = 'ipvisor-serve.service';

export interface HookCommand {
  /** Absolute path of node. */
  node: string;
  /** Extra node arguments (e.g. ['--import', 'tsx'] when running from source). */
  nodeArgs: string[];
  /** Absolute path of the hook entry (dist/libvirt-hook.cjs, or hook-main.ts from source). */
  entry: string;
  db: string;
  log: string;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Pure: the hook script text for one driver. */
export function renderHookScript(kind: 'network' | 'qemu', c: HookCommand): string {
  const argv = [c.node, ...c.nodeArgs, c.entry, `libvirt-${kind}`, '--db', c.db, '--log', c.log].map(shq).join(' ');
  // A node or entry that went away (node upgraded elsewhere, ipvisor moved) must not make libvirt
  // refuse every network and VM: log it and exit 0 like any other unexpected input.
  const plain = (x: string) => x.replace(/["$`\\]/g, ''); // inside the echo's double quotes
  // It drains stdin first: exiting with the XML unread makes libvirt's write fail with EPIPE.
  const guard = `[ -x ${shq(c.node)} ] && [ -r ${shq(c.entry)} ] || { while read -r _; do :; done; echo "ipvisor libvirt-${kind} hook $*: ${plain(c.node)} or ${plain(c.entry)} is missing; exit 0 so libvirt goes on" >>${shq(c.log)}; exit 0; } 2>/dev/null`;
  return `#!/bin/sh\n${HOOK_MARKER}\n# libvirt runs this with argv and the XML on stdin; it must print nothing on stdout.\n${guard}\nexec ${argv} -- "$@"\n`;
}

/** Pure: the systemd unit for `ipvisor serve`. */
export function renderServeUnit(c: { node: string; nodeArgs: string[]; cli: string; db: string }): string {
  const exec = [c.node, ...c.nodeArgs, c.cli, 'serve', '--db', c.db].join(' ');
  return `${HOOK_MARKER}\n[Unit]\nDescription=ipvisor: keeps VM addresses, routes and anti-spoofing true\nAfter=network-online.target libvirtd.service\nWants=network-online.target\n\n[Service]\nType=simple\nExecStart=${exec}\nRestart=on-failure\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n`;
}

/** The repository/package root this code runs from. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'ipvisor') return dir;
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** The hook entry to exec: the bundled dist/libvirt-hook.cjs when built (scripts/build-libvirt-hook.cjs), else the TypeScript
 * source through tsx (slow start-up; fine for development). */
export function defaultHookEntry(root = packageRoot()): { entry: string; nodeArgs: string[] } {
  const built = join(root, 'dist', 'libvirt-hook.cjs');
  if (existsSync(built)) return { entry: built, nodeArgs: [] };
  // Hooks run with cwd '/', so tsx must be named by its absolute URL, not as a bare package name.
  return { entry: join(root, 'src', 'agent', 'libvirt', 'hook-main.ts'), nodeArgs: ['--import', pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href] };
}

export interface InstallOptions {
  hooksDir?: string;
  systemdDir?: string | null;
  command: HookCommand;
  cli?: string;
}

export interface InstallResult {
  written: string[];
  skipped: string[];
}

export function installHooks(o: InstallOptions): InstallResult {
  const hooksDir = o.hooksDir ?? DEFAULT_HOOKS_DIR;
  const res: InstallResult = { written: [], skipped: [] };
  for (const kind of ['network', 'qemu'] as const) {
    const dir = join(hooksDir, `${kind}.d`);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const file = join(dir, HOOK_FILE);
    if (existsSync(file) && !readFileSync(file, 'utf8').includes(HOOK_MARKER)) {
      res.skipped.push(`${file} (not ipvisor's; left alone)`);
      continue;
    }
    writeFileSync(file + '.tmp', renderHookScript(kind, o.command), { mode: 0o755 });
    chmodSync(file + '.tmp', 0o755);
    // rename is atomic: a hook running right now sees the old or the new script, never half.
    renameSync(file + '.tmp', file);
    res.written.push(file);
  }
  if (o.systemdDir !== null) {
    const sd = o.systemdDir ?? DEFAULT_SYSTEMD_DIR;
    if (existsSync(dirname(sd)) || o.systemdDir) {
      mkdirSync(sd, { recursive: true });
      const unit = join(sd, SERVE_UNIT);
      if (!existsSync(unit) || readFileSync(unit, 'utf8').includes(HOOK_MARKER)) {
        writeFileSync(unit, renderServeUnit({ node: o.command.node, nodeArgs: o.command.nodeArgs, cli: o.cli ?? join(packageRoot(), 'bin', 'ipvisor'), db: o.command.db }));
        res.written.push(unit);
      } else res.skipped.push(`${unit} (not ipvisor's; left alone)`);
    }
  }
  return res;
}

export function uninstallHooks(o: { hooksDir?: string; systemdDir?: string | null }): { removed: string[]; skipped: string[] } {
  const hooksDir = o.hooksDir ?? DEFAULT_HOOKS_DIR;
  const out = { removed: [] as string[], skipped: [] as string[] };
  const files = [join(hooksDir, 'network.d', HOOK_FILE), join(hooksDir, 'qemu.d', HOOK_FILE)];
  if (o.systemdDir !== null) files.push(join(o.systemdDir ?? DEFAULT_SYSTEMD_DIR, SERVE_UNIT));
  for (const f of files) {
    if (!existsSync(f)) continue;
    if (!readFileSync(f, 'utf8').includes(HOOK_MARKER)) {
      out.skipped.push(`${f} (not ipvisor's; left alone)`);
      continue;
    }
    rmSync(f, { force: true });
    out.removed.push(f);
  }
  return out;
}

export { DEFAULT_HOOK_LOG };
