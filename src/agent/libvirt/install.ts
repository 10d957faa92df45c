// `ipvisor libvirt install|uninstall`: hook scripts in <hooks>/network.d and <hooks>/qemu.d (the
// user's own hooks stay untouched), and the hardened unit: ipvisor-serve.service on a one-box host,
// ipvisor-agent.service on an agent host (a hypervisor under `ipvisor server`): the packaged unit
// when there is one (never shadowed by a unit of our own), else the shipped unit for this checkout.
// libvirt passes hooks an inherited PATH and nothing else, so the scripts carry absolute paths: node,
// the entry point, the log, and the store (one box) or the host's name and state directory (agent
// host: the hook hands its event to the local agent, or enforces from the agent's copy on disk).
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_HOOK_LOG } from './hook-main.js';

export const HOOK_MARKER = '# installed by ipvisor libvirt install';
export const HOOK_FILE = 'ipvisor';
export const DEFAULT_HOOKS_DIR = '/etc/libvirt/hooks';
export const DEFAULT_SYSTEMD_DIR = '/etc/systemd/system';
export const SERVE_UNIT = 'ipvisor-serve.service';
export const AGENT_UNIT = 'ipvisor-agent.service';
export const DEFAULT_STATE_DIR = '/var/lib/ipvisor';

export interface HookCommand {
  /** Absolute path of node. */
  node: string;
  /** Extra node arguments (e.g. ['--import', 'tsx'] when running from source). */
  nodeArgs: string[];
  /** Absolute path of the hook entry (dist/libvirt-hook.cjs, or hook-main.ts from source). */
  entry: string;
  /** One box: the store the hook records into. */
  db?: string;
  /** Agent host: no store; the local agent (its socket), else its copy in the state directory. */
  agent?: { host: string; stateDir: string };
  log: string;
  /** The run directory (host lock, enforced-store record, agent socket) when it is not /run/ipvisor:
   * libvirtd gives hooks its own environment, so IPVISOR_RUN_DIR must be in the script. */
  runDir?: string;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Pure: the hook script text for one driver. */
export function renderHookScript(kind: 'network' | 'qemu', c: HookCommand): string {
  const where = c.agent ? ['--host', c.agent.host, '--state-dir', c.agent.stateDir] : c.db ? ['--db', c.db] : [];
  const argv = [c.node, ...c.nodeArgs, c.entry, `libvirt-${kind}`, ...where, '--log', c.log, ...(c.runDir ? ['--run-dir', c.runDir] : [])].map(shq).join(' ');
  // A node or entry that went away (node upgraded elsewhere, ipvisor moved) must not make libvirt
  // refuse every network and VM: log it and exit 0 like any other unexpected input.
  const plain = (x: string) => x.replace(/["$`\\]/g, ''); // inside the echo's double quotes
  // It drains stdin first: exiting with the XML unread makes libvirt's write fail with EPIPE.
  const guard = `[ -x ${shq(c.node)} ] && [ -r ${shq(c.entry)} ] || { while read -r _; do :; done; echo "ipvisor libvirt-${kind} hook $*: ${plain(c.node)} or ${plain(c.entry)} is missing; exit 0 so libvirt goes on" >>${shq(c.log)}; exit 0; } 2>/dev/null`;
  return `#!/bin/sh\n${HOOK_MARKER}\n# libvirt runs this with argv and the XML on stdin; it must print nothing on stdout.\n${guard}\nexec ${argv} -- "$@"\n`;
}

/** Where a package puts units; a unit there is the packaged one and is used as it is. */
export const PACKAGED_UNIT_DIRS = ['/lib/systemd/system', '/usr/lib/systemd/system'];
export const DEFAULT_STORE = '/var/lib/ipvisor/ipvisor.db';
export const UNIT_DROPIN = '10-ipvisor-libvirt-install.conf';

/** Pure: a shipped unit (deploy/systemd/ipvisor-serve.service or ipvisor-agent.service) for a source
 * checkout: the same hardened unit, with ExecStart running this checkout, and marked as ours (so the
 * Debian package's postinst and `libvirt uninstall` may remove it). */
export function renderUnit(template: string, c: { execStart: string[]; command: 'serve' | 'agent'; unit: string }): string {
  // systemd command lines: % starts a specifier and $ a variable (both doubled); quotes group words.
  const word = (a: string) => {
    const e = a.replace(/%/g, '%%').replace(/\$/g, '$$$$');
    return /[\s"'\\]/.test(e) ? `"${e.replace(/(["\\])/g, '\\$1')}"` : e;
  };
  const line = new RegExp(`^ExecStart=\\S+ ${c.command} `, 'm');
  if (!line.test(template)) throw new Error(`unit template has no 'ExecStart=... ${c.command} ' line`);
  const exec = `ExecStart=${c.execStart.map(word).join(' ')} `;
  let unit = template.replace(line, () => exec);
  // A checkout (or node) under a home directory must stay readable: ProtectHome=yes would hide it.
  if (c.execStart.some((a) => /^\/(root|home|run\/user)(\/|$)/.test(a))) unit = unit.replace(/^ProtectHome=yes$/m, 'ProtectHome=read-only');
  return `${HOOK_MARKER} (from deploy/systemd/${c.unit})\n` + unit;
}

export function renderServeUnit(template: string, c: { execStart: string[] }): string {
  return renderUnit(template, { ...c, command: 'serve', unit: SERVE_UNIT });
}

/** The agent unit: ExecStart ends in `agent $IPVISOR_AGENT_ARGS` (/etc/default/ipvisor-agent says
 * --server and --token-file). */
export function renderAgentUnit(template: string, c: { execStart: string[] }): string {
  return renderUnit(template, { ...c, command: 'agent', unit: AGENT_UNIT });
}

/** Pure: the drop-in that points the agent at a state directory other than the default one. */
export function renderStateDirDropIn(stateDir: string): string {
  return `${HOOK_MARKER}\n[Service]\nEnvironment=IPVISOR_STATE_DIR=${stateDir}\nReadWritePaths=${stateDir}\n`;
}

/** Pure: the drop-in that points the unit at a store other than the default one. */
export function renderStoreDropIn(db: string): string {
  return `${HOOK_MARKER}\n[Service]\nEnvironment=IPVISOR_DB=${db}\nReadWritePaths=${dirname(db)}\n`;
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
  command: HookCommand;
}

export interface InstallResult {
  written: string[];
  skipped: string[];
  removed?: string[];
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
  return res;
}

export interface ServeUnitOptions {
  /** Where admin units go (/etc/systemd/system). */
  systemdDir: string;
  /** Where a package's units are (PACKAGED_UNIT_DIRS). */
  packagedDirs?: string[];
  /** For a source checkout without the package: the command line serve runs with. */
  execStart: string[];
  db: string;
  /** The shipped unit text (deploy/systemd/ipvisor-serve.service). */
  template: string;
}

export interface UnitResult {
  written: string[];
  removed: string[];
  skipped: string[];
  packaged: boolean;
}

const isOurs = (f: string) => existsSync(f) && readFileSync(f, 'utf8').includes(HOOK_MARKER);

/** The packaged unit, else ours rendered for this checkout; a drop-in when `dropIn` is given. */
function installUnit(o: { systemdDir: string; packagedDirs?: string[]; unit: string; render: () => string; dropIn: string | null }): UnitResult {
  const res: UnitResult = { written: [], removed: [], skipped: [], packaged: false };
  const adminUnit = join(o.systemdDir, o.unit);
  res.packaged = (o.packagedDirs ?? PACKAGED_UNIT_DIRS).some((d) => existsSync(join(d, o.unit)));
  mkdirSync(o.systemdDir, { recursive: true });
  if (existsSync(adminUnit) && !isOurs(adminUnit)) {
    res.skipped.push(`${adminUnit} (not ipvisor's; left alone)`);
  } else if (res.packaged) {
    if (isOurs(adminUnit)) {
      rmSync(adminUnit);
      res.removed.push(adminUnit);
    }
  } else {
    writeFileSync(adminUnit, o.render());
    res.written.push(adminUnit);
  }
  const dropInDir = join(o.systemdDir, `${o.unit}.d`);
  const dropIn = join(dropInDir, UNIT_DROPIN);
  if (o.dropIn !== null) {
    mkdirSync(dropInDir, { recursive: true });
    writeFileSync(dropIn, o.dropIn);
    res.written.push(dropIn);
  } else if (isOurs(dropIn)) {
    rmSync(dropIn);
    res.removed.push(dropIn);
  }
  return res;
}

/** Our copies of a unit and its drop-in (never the packaged unit, never an admin's own). */
function removeOurUnit(systemdDir: string, unit: string): string[] {
  const removed: string[] = [];
  for (const f of [join(systemdDir, unit), join(systemdDir, `${unit}.d`, UNIT_DROPIN)]) {
    if (isOurs(f)) {
      rmSync(f);
      removed.push(f);
    }
  }
  return removed;
}

/**
 * Makes ipvisor-serve.service the hardened unit: the packaged one when the package installed it (an
 * older ipvisor-written unit in /etc that would shadow it is removed), else the shipped unit for this
 * checkout. A store other than the default gets a drop-in. An agent unit libvirt install wrote
 * before goes (a host is one box or an agent host). Returns what was written and removed, and
 * whether the packaged unit is used; enabling it is the caller's (systemctl) business.
 */
export function installServeUnit(o: ServeUnitOptions): UnitResult {
  const res = installUnit({ systemdDir: o.systemdDir, packagedDirs: o.packagedDirs, unit: SERVE_UNIT, render: () => renderServeUnit(o.template, { execStart: o.execStart }), dropIn: resolve(o.db) !== DEFAULT_STORE ? renderStoreDropIn(resolve(o.db)) : null });
  res.removed.push(...removeOurUnit(o.systemdDir, AGENT_UNIT));
  return res;
}

/** On an agent host: the hardened ipvisor-agent.service (packaged, else ours for this checkout), a
 * drop-in for a state directory other than /var/lib/ipvisor, and a serve unit libvirt install
 * wrote before removed (the agent unit conflicts with it). */
export function installAgentUnit(o: { systemdDir: string; packagedDirs?: string[]; execStart: string[]; stateDir: string; template: string }): UnitResult {
  const res = installUnit({ systemdDir: o.systemdDir, packagedDirs: o.packagedDirs, unit: AGENT_UNIT, render: () => renderAgentUnit(o.template, { execStart: o.execStart }), dropIn: resolve(o.stateDir) !== DEFAULT_STATE_DIR ? renderStateDirDropIn(resolve(o.stateDir)) : null });
  res.removed.push(...removeOurUnit(o.systemdDir, SERVE_UNIT));
  return res;
}

/** The shipped serve unit of this install (deploy/systemd in a checkout and in the package). */
export function serveUnitTemplate(root = packageRoot()): string {
  return readFileSync(join(root, 'deploy', 'systemd', SERVE_UNIT), 'utf8');
}

export function agentUnitTemplate(root = packageRoot()): string {
  return readFileSync(join(root, 'deploy', 'systemd', AGENT_UNIT), 'utf8');
}

export function uninstallHooks(o: { hooksDir?: string; systemdDir?: string | null }): { removed: string[]; skipped: string[] } {
  const hooksDir = o.hooksDir ?? DEFAULT_HOOKS_DIR;
  const out = { removed: [] as string[], skipped: [] as string[] };
  const files = [join(hooksDir, 'network.d', HOOK_FILE), join(hooksDir, 'qemu.d', HOOK_FILE)];
  if (o.systemdDir !== null) {
    const d = o.systemdDir ?? DEFAULT_SYSTEMD_DIR;
    for (const unit of [SERVE_UNIT, AGENT_UNIT]) files.push(join(d, unit), join(d, `${unit}.d`, UNIT_DROPIN));
  }
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
