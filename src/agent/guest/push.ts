// Live push of a network_data.json document into a running guest through its QEMU guest agent:
// sync, detect the OS and config format, render, back up, write, apply live with the `ip` script,
// verify with guest-network-get-interfaces, and roll back when the new configuration does not
// come up in time. A guard process inside the guest rolls back by itself unless the host
// confirms, so even a host that loses the agent mid-push never leaves the guest unreachable.
import { randomBytes } from 'node:crypto';
import { IpvisorError } from '../../core/model/errors.js';
import type { GuestNetState } from '../../core/guest/ir.js';
import { parseNetworkData } from '../../core/guest/parse.js';
import { GuestAgent, PUSH_RPCS, type QgaInterface } from './qga.js';
import { xapiGuestPushOrNull, type PersistFormat, type PushOptions, type PushPlan, type PushResult } from '../../core/guest/push-port.js';
import { GUEST_FORMATS, render, type GuestFormat } from '../../core/guest/render.js';
import { IP_SCRIPT_PATH, parseStepReport, RESOLV_CONF, routeKey, type IpRenderOptions, type LiveRoute } from '../../core/guest/renderers/ip.js';
import { WINDOWS_PATH } from '../../core/guest/renderers/windows.js';
import {
  desiredFromObserved,
  parseWindowsObservation,
  renderWindowsActions,
  renderWindowsArm,
  simulateWindows,
  windowsActions,
  windowsDesired,
  WINDOWS_GUARD_TASK,
  WINDOWS_OBSERVE_SCRIPT,
  type WinAction,
} from '../../core/guest/windows-plan.js';
import { observedAddresses, renderRollbackScript, sq, type BackedUpFile, type ObservedLink, type ObservedNet, type ObservedRoute } from '../../core/guest/rollback.js';

export type { PersistFormat, PushOptions, PushPlan, PushResult } from '../../core/guest/push-port.js';

const DETECT_FORMAT = [
  // netplan, and its backend when the guest's own netplan files pick NetworkManager (desktops)
  'if [ -d /etc/netplan ] && command -v netplan >/dev/null 2>&1; then',
  "  if grep -qsE '^[[:space:]]*renderer:[[:space:]]*NetworkManager' /etc/netplan/*.yaml; then echo netplan NetworkManager; else echo netplan; fi",
  'elif [ -d /etc/NetworkManager/system-connections ] && command -v nmcli >/dev/null 2>&1; then echo nm',
  'elif [ -d /etc/sysconfig/network-scripts ]; then echo sysconfig',
  'elif [ -d /etc/network/interfaces.d ] || [ -f /etc/network/interfaces ]; then echo eni',
  'elif [ -d /etc/systemd/network ]; then echo networkd',
  'else echo none; fi',
].join('\n');

/** Files that must be root-only (netplan warns about, and NetworkManager ignores, readable ones). */
const PRIVATE_FILE = /(\.yaml|\.nmconnection)$/;

/**
 * MAC -> name as the guest sees it. A bond member shows the bond's MAC, so `ip -j link`'s
 * `permaddr` (the NIC's own address) is preferred over the current one; guest-network-get-interfaces
 * is the fallback when the agent cannot run ip. Lower ifindex wins (a NIC before its bond/VLANs).
 */
export function guestNicNames(ifaces: QgaInterface[], links: ObservedLink[] | null): Record<string, string> {
  const out: Record<string, string> = {};
  const add = (mac: string | undefined, name: string): void => {
    const m = mac?.toLowerCase();
    if (!m || m === '00:00:00:00:00:00' || name === 'lo' || m in out) return;
    out[m] = name;
  };
  if (links) {
    const sorted = [...links].sort((a, b) => (a.ifindex ?? 0) - (b.ifindex ?? 0));
    for (const l of sorted) add(l.permaddr, l.ifname);
    // A bond carries its first member's MAC and a VLAN its parent's: never a NIC's name, even when
    // the bond has the lower ifindex (the bonding module loaded before the NIC driver made bond0)
    const masters = new Set(links.map((l) => l.master).filter((m): m is string => !!m));
    for (const l of sorted) if ((!l.link_type || l.link_type === 'ether') && !masters.has(l.ifname) && !l.link) add(l.address, l.ifname);
  }
  for (const i of ifaces) add(i['hardware-address'], i.name);
  return out;
}

/** What is missing from the guest compared to the desired state ([] = everything is up). */
export function missingInGuest(state: GuestNetState, ifaces: QgaInterface[], mtus: Record<string, number> | null, routes: ObservedNet | null = null): string[] {
  const problems: string[] = [];
  for (const i of state.interfaces) {
    const g = ifaces.find((x) => x.name === i.name);
    if (!g) {
      problems.push(`no interface ${i.name}`);
      continue;
    }
    for (const a of i.addresses) {
      const have = (g['ip-addresses'] ?? []).some((x) => x['ip-address'].toLowerCase() === a.address && x.prefix === a.prefixLength);
      if (!have) problems.push(`${a.address}/${a.prefixLength} missing on ${i.name}`);
    }
    if (mtus && i.mtu !== null && mtus[i.name] !== i.mtu) problems.push(`${i.name} has MTU ${mtus[i.name]}, not ${i.mtu}`);
    if (!routes || i.bondMaster) continue;
    const present = new Set(liveState({ ...routes, links: [] }).routes);
    for (const r of i.routes) {
      if (!present.has(routeKey(r.family, r.destination, r.gateway, i.name, r.metric))) problems.push(`route ${r.destination} via ${r.gateway} missing on ${i.name}`);
    }
  }
  return problems;
}

export async function pushNetworkData(agent: GuestAgent, doc: unknown, opts: PushOptions = {}): Promise<PushResult> {
  const log = opts.log ?? (() => undefined);
  await agent.ping();
  if (!opts.dryRun) await agent.requireCommands(PUSH_RPCS);
  const os = await agent.osInfo();
  const windows = os?.id === 'mswindows';
  const before = await agent.interfaces();
  let links: ObservedLink[] | null = null;
  if (!windows) {
    const r = await agent.exec('ip', ['-j', 'link', 'show']).catch(() => null);
    if (r?.exitcode === 0) links = JSON.parse(r.stdout || '[]') as ObservedLink[];
  }
  const fromGuest = guestNicNames(before, links);
  const explicit = new Set(Object.keys(opts.nicNames ?? {}).map((m) => m.toLowerCase().replace(/-/g, ':')));
  const state = parseNetworkData(doc, { nicNames: { ...fromGuest, ...(opts.nicNames ?? {}) } });
  for (const i of state.interfaces) {
    if (i.type !== 'physical') continue;
    // never configure some other NIC that merely happens to be called ethN
    if (i.mac && !explicit.has(i.mac) && !(i.mac in fromGuest)) {
      throw new IpvisorError('DRIVER', `guest has no NIC with MAC ${i.mac} (link '${i.linkId}'); pass --nic NAME=MAC`, { field: 'nic' });
    }
    if (!before.some((g) => g.name === i.name)) {
      throw new IpvisorError('DRIVER', `guest has no interface ${i.name} (link '${i.linkId}'); pass --nic NAME=MAC`, { field: 'nic' });
    }
  }
  log(`guest: ${os?.['pretty-name'] ?? 'unknown OS'}`);
  if (windows) {
    for (const w of state.warnings) log(`guest: warning: ${w}`);
    return { ...(await pushWindows(agent, state, opts)), warnings: state.warnings };
  }

  const work = opts.workDir ?? '/run/ipvisor';
  const run = async (path: string, args: string[], what: string, timeoutMs = 30_000): Promise<string> => {
    const r = await agent.exec(path, args, { timeoutMs });
    if (r.exitcode !== 0) throw new IpvisorError('DRIVER', `guest: ${what} failed (exit ${r.exitcode ?? `signal ${r.signal}`}): ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  };
  const ipJson = async (args: string[]): Promise<never[]> => JSON.parse((await run('ip', ['-j', ...args], `ip -j ${args.join(' ')}`)) || '[]');
  const observed: ObservedNet = {
    links: links ?? (await ipJson(['link', 'show'])),
    addrs: await ipJson(['addr', 'show']),
    routes4: await ipJson(['-4', 'route', 'show', 'table', 'main']),
    routes6: await ipJson(['-6', 'route', 'show', 'table', 'main']),
  };
  const detected = opts.format ? [opts.format] : (await run('sh', ['-c', DETECT_FORMAT], 'detecting the network configuration format')).trim().split(/\s+/);
  const format = detected[0] as PersistFormat;
  const netplanRenderer = detected[1] === 'NetworkManager' ? ('NetworkManager' as const) : undefined;
  if (format !== 'none' && !(GUEST_FORMATS as readonly string[]).includes(format)) throw new IpvisorError('DRIVER', `guest: unknown configuration format '${format}'`);
  const files: Record<string, string> = {};
  if (format !== 'none') for (const [p, c] of Object.entries(render(state, format, { netplanRenderer }))) files[`/${p}`] = c;
  // ipvisor's own files of this format that the new document no longer produces (a removed NIC's
  // ifcfg-, .network or .nmconnection file): removed, backed up like the rest
  const stale = format === 'none' ? [] : (await ownConfigFiles(agent, format)).filter((p) => !(p in files));
  const backups: BackedUpFile[] = [...Object.keys(files), ...stale].map((path, n) => ({ path, backup: `${work}/backup/${n}` }));
  const current = observedAddresses(observed);
  const applyScript = render(state, 'ip', { current, live: liveState(observed) })[IP_SCRIPT_PATH]!;
  const resolvBackup = `${work}/backup/resolv.conf`;
  const rollbackScript = renderRollbackScript(observed, state, backups, { resolvConf: { path: RESOLV_CONF, backup: resolvBackup } });
  const plan: PushPlan = { os: os?.['pretty-name'] ?? os?.id ?? 'linux', format, files, removed: stale, applyScript, rollbackScript };
  const warnings = [...state.warnings, ...(format === 'none' ? [] : await otherConfigNaming(agent, format, state, [...Object.keys(files), ...stale]))];
  for (const w of warnings) log(`guest: warning: ${w}`);
  if (opts.dryRun) return { plan, applied: false, interfaces: before, warnings };

  const nonce = randomBytes(6).toString('hex');
  const confirm = `${work}/confirm-${nonce}`;
  const guardSeconds = opts.guardSeconds ?? 120;
  // Files are staged in the root-only work directory and installed with their final mode: the
  // agent creates files world-writable, and a world-writable ifupdown file runs commands as root.
  const staged = Object.keys(files).map((path, n) => ({ path, staged: `${work}/new/${n}`, mode: PRIVATE_FILE.test(path) ? '600' : '644' }));
  const prepare = [
    '#!/bin/sh',
    'set -e',
    `rm -rf ${sq(`${work}/backup`)} ${sq(`${work}/new`)}`,
    `mkdir -p ${sq(`${work}/backup`)} ${sq(`${work}/new`)}`,
    ...backups.map((b) => `if [ -e ${sq(b.path)} ]; then cp -p ${sq(b.path)} ${sq(b.backup)}; fi`),
    // the resolver the apply script may rewrite in place (never a symlink: those are someone else's)
    `if [ -f ${RESOLV_CONF} ] && [ ! -L ${RESOLV_CONF} ]; then cat ${RESOLV_CONF} > ${sq(resolvBackup)}; fi`,
  ].join('\n');
  const install = [
    '#!/bin/sh',
    'set -e',
    ...[...new Set(Object.keys(files).map((p) => p.slice(0, p.lastIndexOf('/'))))].map((d) => `mkdir -p ${sq(d)}`),
    // mode set in the private directory, copied next to the target under a hidden name, renamed
    // into place: no reader ever sees a partial or a world-writable file
    ...staged.flatMap((f) => {
      const tmp = `${f.path.slice(0, f.path.lastIndexOf('/'))}/.${f.path.slice(f.path.lastIndexOf('/') + 1)}.ipvisor-new`;
      return [`chmod ${f.mode} ${sq(f.staged)}`, `cp -p ${sq(f.staged)} ${sq(tmp)}`, `mv -f ${sq(tmp)} ${sq(f.path)}`];
    }),
    ...stale.map((p) => `rm -f ${sq(p)}`),
  ].join('\n');
  const guard = [
    '#!/bin/sh',
    '# Rolls the network back unless ipvisor confirms the new configuration in time.',
    'i=0',
    `while [ $i -lt ${guardSeconds} ]; do`,
    `  [ -e ${sq(confirm)} ] && exit 0`,
    '  sleep 1',
    '  i=$((i+1))',
    'done',
    `touch ${sq(confirm)}`,
    `exec sh ${sq(`${work}/rollback.sh`)}`,
  ].join('\n');

  await run('mkdir', ['-p', work], `mkdir ${work}`);
  await run('chmod', ['700', work], `chmod 700 ${work}`);
  await agent.writeFile(`${work}/prepare.sh`, prepare + '\n');
  await run('sh', [`${work}/prepare.sh`], 'backing up the current configuration');
  await agent.writeFile(`${work}/rollback.sh`, rollbackScript);
  await agent.writeFile(`${work}/apply.sh`, applyScript);
  await agent.writeFile(`${work}/install.sh`, install + '\n');
  await agent.writeFile(`${work}/guard.sh`, guard + '\n');
  for (const f of staged) await agent.writeFile(f.staged, files[f.path]!);
  await agent.spawn('sh', [`${work}/guard.sh`]);
  log(`guest: guard armed (rolls back in ${guardSeconds}s unless confirmed)`);

  let failure: string | null = null;
  try {
    await run('sh', [`${work}/install.sh`], 'installing the configuration files');
    log(`guest: wrote ${Object.keys(files).length} ${format} file(s)${stale.length ? `, removed ${stale.join(', ')}` : ''}; applying`);
    // The script runs every step; the decision is made on the whole result: the steps that failed
    // and whatever is still missing once the rest had time to come up.
    const r = await agent.exec('sh', [`${work}/apply.sh`], { timeoutMs: opts.verifyTimeoutMs ?? 20_000 });
    const report = parseStepReport(r.stderr);
    for (const w of report.warnings) {
      warnings.push(w);
      log(`guest: warning: ${w}`);
    }
    for (const f of report.failed) log(`guest: step failed: ${f}`);
    const problems = report.failed.map((f) => `step failed: ${f}`);
    if (r.exitcode !== 0 && !report.failed.length) problems.push(`the apply script failed (exit ${r.exitcode ?? `signal ${r.signal}`}): ${r.stderr.trim().split('\n').pop()}`);
    const missing = await waitUntilUp(agent, state, problems.length ? 0 : (opts.verifyTimeoutMs ?? 20_000));
    if (missing) problems.push(missing);
    failure = problems.length ? `the apply script failed: ${problems.join('; ')}` : null;
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  if (failure === null) {
    log('guest: new configuration is up; confirming');
    await run('touch', [confirm], 'confirming the new configuration');
    log('guest: confirmed');
    return { plan, applied: true, interfaces: await agent.interfaces(), warnings };
  }
  log(`guest: ${failure}; rolling back`);
  try {
    await run('touch', [confirm], 'disarming the guard');
    const r = await agent.exec('sh', [`${work}/rollback.sh`], { timeoutMs: 30_000 });
    log(`guest: rollback finished (exit ${r.exitcode})`);
  } catch (e) {
    throw new IpvisorError('DRIVER', `guest push failed: ${failure}; the rollback through the agent failed too (${e instanceof Error ? e.message : String(e)}): the guest rolls back by itself within ${guardSeconds}s`);
  }
  throw new IpvisorError('DRIVER', `guest push failed: ${failure}; rolled back to the previous configuration`, { details: { rolledBack: true } });
}

/** What already matches in the guest (MTU, up, routes): the apply script leaves it alone. */
export function liveState(observed: ObservedNet): NonNullable<IpRenderOptions['live']> {
  const links = Object.fromEntries(observed.links.map((l) => [l.ifname, { mtu: l.mtu, up: l.flags?.includes('UP') ?? false }]));
  const routes: string[] = [];
  const staticRoutes: LiveRoute[] = [];
  for (const [family, list] of [[4, observed.routes4], [6, observed.routes6]] as const) {
    for (const r of list as ObservedRoute[]) {
      if (!r.gateway || !r.dev || (r.type && r.type !== 'unicast')) continue;
      routes.push(routeKey(family, r.dst, r.gateway, r.dev, r.metric ?? null));
      // the kernel's, a router advertisement's or a DHCP client's routes are theirs to manage
      if (!['kernel', 'ra', 'dhcp', 'redirect'].includes(r.protocol ?? 'boot')) staticRoutes.push({ family, dst: r.dst, gateway: r.gateway, dev: r.dev, metric: r.metric ?? null });
    }
  }
  return { links, routes, staticRoutes };
}

/** ipvisor's own files of a format in the guest (first line is ipvisor's header). */
async function ownConfigFiles(agent: GuestAgent, format: Exclude<PersistFormat, 'none'>): Promise<string[]> {
  const dirs = CONFIG_DIRS[format].map(([d]) => d).filter((d) => d.startsWith('/etc/'));
  const script = `for d in ${dirs.map(sq).join(' ')}; do [ -d "$d" ] || continue; for f in "$d"/*; do [ -f "$f" ] && head -n 1 "$f" | grep -q '^# Generated by ipvisor' && echo "$f"; done; done; true`;
  const r = await agent.exec('sh', ['-c', script]).catch(() => null);
  if (!r || r.exitcode !== 0) return [];
  return r.stdout.split('\n').filter((p) => p && !p.slice(p.lastIndexOf('/') + 1).startsWith('.'));
}

/** Where each persisted format keeps its files (directory, file-name filter). */
const CONFIG_DIRS: Record<Exclude<PersistFormat, 'none'>, [string, RegExp][]> = {
  netplan: [['/etc/netplan', /\.yaml$/]],
  eni: [['/etc/network', /^interfaces$/], ['/etc/network/interfaces.d', /^[^.]/]],
  nm: [['/etc/NetworkManager/system-connections', /^[^.]/]],
  networkd: [['/etc/systemd/network', /\.(network|netdev)$/], ['/run/systemd/network', /\.(network|netdev)$/]],
  sysconfig: [['/etc/sysconfig/network-scripts', /^(ifcfg|route6?)-/]],
};

/**
 * Other files of the same format that name a pushed interface or MAC: netplan appends their
 * addresses to ours at the next boot, ifupdown and NetworkManager may bring up both.
 */
async function otherConfigNaming(agent: GuestAgent, format: Exclude<PersistFormat, 'none'>, state: GuestNetState, own: string[]): Promise<string[]> {
  const names = state.interfaces.map((i) => i.name);
  const macs = state.interfaces.filter((i) => i.type === 'physical' && i.mac).map((i) => i.mac!);
  const word = (w: string) => new RegExp(`(^|[^A-Za-z0-9_.:-])${w.replace(/\./g, '\\.')}([^A-Za-z0-9_.:-]|$)`, 'm');
  const out: string[] = [];
  for (const [dir, filter] of CONFIG_DIRS[format]) {
    const ls = await agent.exec('ls', ['-1', dir]).catch(() => null);
    if (!ls || ls.exitcode !== 0) continue;
    for (const f of ls.stdout.split('\n').filter((x) => x && filter.test(x))) {
      const path = `${dir}/${f}`;
      if (own.includes(path)) continue;
      const text = (await agent.readFile(path).catch(() => null))?.toString('utf8');
      if (!text) continue;
      const hits = [...names.filter((n) => word(n).test(text)), ...macs.filter((m) => text.toLowerCase().includes(m))];
      if (hits.length) out.push(`${path} also configures ${[...new Set(hits)].join(', ')}; at the next boot it adds to (or fights) ipvisor's ${format} file`);
    }
  }
  return out;
}

async function guestMtus(agent: GuestAgent): Promise<Record<string, number> | null> {
  const r = await agent.exec('ip', ['-j', 'link', 'show']);
  if (r.exitcode !== 0) return null;
  return Object.fromEntries((JSON.parse(r.stdout) as { ifname: string; mtu: number }[]).map((l) => [l.ifname, l.mtu]));
}

async function guestRoutes(agent: GuestAgent): Promise<ObservedNet | null> {
  const get = async (family: string): Promise<ObservedRoute[] | null> => {
    const r = await agent.exec('ip', ['-j', family, 'route', 'show', 'table', 'main']);
    return r.exitcode === 0 ? (JSON.parse(r.stdout || '[]') as ObservedRoute[]) : null;
  };
  const [routes4, routes6] = [await get('-4'), await get('-6')];
  return routes4 && routes6 ? { links: [], addrs: [], routes4, routes6 } : null;
}

/** Polls the agent until every address and MTU is in place; returns the reason on timeout. */
async function waitUntilUp(agent: GuestAgent, state: GuestNetState, timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = missingInGuest(state, await agent.interfaces(), await guestMtus(agent), await guestRoutes(agent));
    if (missing.length === 0) return null;
    if (Date.now() > deadline) return `the new configuration did not come up within ${timeoutMs} ms (${missing.join('; ')})`;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Windows: observe (read-only PowerShell, JSON), decide in TypeScript (windows-plan.ts), then run
 * the decided actions as straight-line PowerShell under a guard: a scheduled task that runs the
 * rollback (the same decisions made back towards the observation) unless ipvisor confirms in time.
 * Bonds and VLANs (LBFO teams) are created by the full script instead; the guard then restores the
 * physical adapters only.
 */
async function pushWindows(agent: GuestAgent, state: GuestNetState, opts: PushOptions): Promise<PushResult> {
  const log = opts.log ?? (() => undefined);
  const dir = 'C:\\Windows\\Temp\\ipvisor';
  const powershell = (file: string, timeoutMs = 120_000) => agent.exec('powershell.exe', ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', file], { timeoutMs });
  await agent.exec('cmd.exe', ['/c', 'mkdir', dir]).catch(() => undefined);
  await agent.writeFile(`${dir}\\observe.ps1`, WINDOWS_OBSERVE_SCRIPT);
  const seen = await powershell(`${dir}\\observe.ps1`, 60_000);
  if (seen.exitcode !== 0) throw new IpvisorError('DRIVER', `guest: reading the Windows network configuration failed (exit ${seen.exitcode}): ${seen.stderr.trim().split('\n').slice(-2).join(' ')}`);
  const observed = parseWindowsObservation(seen.stdout);
  const teams = state.interfaces.some((i) => i.type !== 'physical');
  let actions: WinAction[];
  try {
    actions = windowsActions(windowsDesired(state), observed);
  } catch (e) {
    throw new IpvisorError('DRIVER', `guest: ${e instanceof Error ? e.message : String(e)}; pass --nic NAME=MAC`, { field: 'nic' });
  }
  const applyScript = teams ? render(state, 'windows')[WINDOWS_PATH]! : renderWindowsActions(actions, 'applies the network configuration (decided from the observed state)');
  const rollbackScript = renderWindowsActions(windowsActions(desiredFromObserved(observed), simulateWindows(observed, actions)), 'restores the network as it was before the push');
  const guardSeconds = opts.guardSeconds ?? 120;
  const { arm, guard, disarm } = renderWindowsArm(dir, guardSeconds);
  const files = { [`${dir}\\apply.ps1`]: applyScript, [`${dir}\\rollback.ps1`]: rollbackScript, [`${dir}\\guard.ps1`]: guard, [`${dir}\\arm.ps1`]: arm, [`${dir}\\disarm.ps1`]: disarm };
  const plan: PushPlan = { os: 'Windows', format: 'windows', files, applyScript, rollbackScript };
  if (opts.dryRun) return { plan, applied: false, interfaces: await agent.interfaces() };
  for (const [p, c] of Object.entries(files)) await agent.writeFile(p, c);
  const armed = await powershell(`${dir}\\arm.ps1`, 60_000);
  if (armed.exitcode !== 0) throw new IpvisorError('DRIVER', `guest: arming the rollback guard (scheduled task) failed (exit ${armed.exitcode}): ${armed.stderr.trim().split('\n').slice(-2).join(' ')}; nothing was changed`);
  log(`guest: guard armed (scheduled task ${WINDOWS_GUARD_TASK} rolls back in ${guardSeconds}s unless confirmed)`);
  let failure: string | null;
  try {
    const r = await powershell(`${dir}\\apply.ps1`);
    const report = parseStepReport(`${r.stdout}\n${r.stderr}`);
    for (const f of report.failed) log(`guest: step failed: ${f}`);
    const problems = report.failed.map((f) => `step failed: ${f}`);
    if (r.exitcode !== 0 && !report.failed.length) problems.push(`the PowerShell script failed (exit ${r.exitcode}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
    if (!problems.length) {
      const deadline = Date.now() + (opts.verifyTimeoutMs ?? 60_000);
      for (;;) {
        const missing = missingInGuest(state, await agent.interfaces(), null);
        if (!missing.length) break;
        if (Date.now() > deadline) {
          problems.push(`the new configuration did not come up: ${missing.join('; ')}`);
          break;
        }
        await new Promise((res) => setTimeout(res, 500));
      }
    }
    failure = problems.length ? problems.join('; ') : null;
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  if (failure === null) {
    await powershell(`${dir}\\disarm.ps1`, 60_000);
    log('guest: confirmed');
    return { plan, applied: true, interfaces: await agent.interfaces() };
  }
  log(`guest: ${failure}; rolling back`);
  try {
    await powershell(`${dir}\\disarm.ps1`, 60_000);
    const r = await powershell(`${dir}\\rollback.ps1`);
    log(`guest: rollback finished (exit ${r.exitcode})`);
  } catch (e) {
    throw new IpvisorError('DRIVER', `guest push failed: ${failure}; the rollback through the agent failed too (${e instanceof Error ? e.message : String(e)}): the scheduled task rolls back within ${guardSeconds}s`);
  }
  throw new IpvisorError('DRIVER', `guest push failed: ${failure}; rolled back to the previous configuration`, { details: { rolledBack: true } });
}

/** XCP-ng guests: pushed through the XAPI driver's seam (core/guest/push-port.ts). */
export async function pushViaXapi(vmUuid: string, doc: unknown, opts: PushOptions = {}): Promise<PushResult> {
  const xapiGuestPush = xapiGuestPushOrNull();
  if (!xapiGuestPush) throw new IpvisorError('DRIVER', 'guest push through XAPI is not available in this build (no XAPI guest push registered)');
  return xapiGuestPush(vmUuid, doc, opts);
}
